"""Runs the moto AWS emulator for the tests and the local stack.

Binds the given loopback port (0 = a free one), prints `READY <port>` once it serves, and stops
when its standard input closes, so the process that started it cannot leave it behind, even
when that process is killed.
"""

import argparse
import base64
import copy
import functools
import gc
import json
import sys
import threading
from datetime import datetime

import moto.backends as moto_backends
import moto.core.responses as core_responses
import moto.dynamodb.models as dynamodb_models
import moto.s3.models as s3_models
import moto.sqs.models as sqs_models
from moto.core.utils import get_service_model
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.server import ThreadedMotoServer

# DynamoDB reads answered with json.dumps instead of moto's generic shape serializer, which
# spends about 1 ms per item (80% of a Query, profiled with cProfile): a listing of 10 000
# messages took 12 s, nearly all of it there. Their results are already DynamoDB JSON; only
# binary values (raw bytes here) and timestamps need encoding, as the serializer encodes them.
FAST_READS = {"Query", "Scan", "GetItem", "BatchGetItem"}


def _wire(value):
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not DynamoDB JSON")


# Writes too: the serializer spent 1.2 ms of an UpdateItem returning ALL_NEW (a third of its
# time) and 0.1 ms of a PutItem. Their results carry keys the output shape does not have
# (DeleteItem's ConsumedCapacityUnits), which the serializer leaves out, so only the shape's
# members are written.
FAST_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
_OUTPUT_MEMBERS = {
    action: frozenset(get_service_model("dynamodb").operation_model(action).output_shape.members) for action in FAST_WRITES
}
_serialized = DynamoHandler.serialized


def _fast_serialized(self, action_result):
    result = action_result.result
    action = self._get_action()
    if (action not in FAST_READS and action not in FAST_WRITES) or not isinstance(result, dict):
        return _serialized(self, action_result)
    members = _OUTPUT_MEMBERS.get(action)
    headers = dict(self.response_headers)
    headers["Content-Type"] = "application/x-amz-json-1.0"
    answer = {k: v for k, v in result.items() if v is not None and (members is None or k in members)}
    body = json.dumps(answer, default=_wire, separators=(",", ":"))
    return 200, headers, body


DynamoHandler.serialized = _fast_serialized


def _sorted_items(self, hash_key_attrs, range_key_attrs, items):
    # moto sorts every page of an index query by comparing its DynamoType objects, which casts
    # both values on each comparison (a third of a query's time); each key's value cast once
    # gives the same order (key attributes are S, N or B, compared by their cast values).
    attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    items.sort(key=lambda item: tuple(item.attrs[key].cast_value for key in attrs))
    return items


Table.sorted_items = _sorted_items


def _items_of(table):
    # Copies of the dict views (list() holds the interpreter lock throughout): reads are not
    # under the write lock, and moto's own loop failed with "dictionary changed size during
    # iteration" (a 500) when a PutItem landed in the middle of a query.
    if table.range_key_attr:
        return [item for by_range in list(table.items.values()) for item in list(by_range.values())]
    return list(table.items.values())


_queries = threading.local()


def _all_items(self):
    # A query sorts what it finds by the index's keys and then the table's, an order without
    # ties, so the table-wide sort moto does first cannot change its answer: a query skips it
    # (55% of a byDevice query over 2 000 Observations, growing with the table). Scans and
    # everything else get moto's order, each key's value cast once.
    items = _items_of(self)
    if getattr(_queries, "active", False):
        return items
    return sorted(items, key=lambda x: (x.hash_key.cast_value, x.range_key.cast_value) if x.range_key else x.hash_key.cast_value)


_query = Table.query


def _query_without_table_sort(self, *args, **kwargs):
    _queries.active = True
    try:
        return _query(self, *args, **kwargs)
    finally:
        _queries.active = False


Table.all_items = _all_items
Table.query = _query_without_table_sort

# moto reads each key value through DynamoType.cast_value, which asks five is_* questions before
# answering `self.value` for a string, binary or boolean: a query's comparisons over the table
# spent a fifth of their time there. The same answer, without the questions, for those types.
_cast_value = DynamoType.cast_value.fget
_UNCAST = frozenset({"S", "B", "BOOL"})


def _fast_cast_value(self):
    if self.type in _UNCAST:
        return self.value
    return _cast_value(self)


DynamoType.cast_value = property(_fast_cast_value)

# Work moto repeats on every request of every service with the same answer (a quarter of a
# GetItem's time, profiled with cProfile on a heart-rate reading's four calls):
# - finding the request's service lists moto's package directory and stats its ~150 entries;
# - the handler's method names are listed with inspect.getmembers.
# Both are taken once: neither changes while the emulator runs.
_MOTO_MODULES = tuple(moto_backends.list_of_moto_modules())
moto_backends.list_of_moto_modules = lambda: _MOTO_MODULES
core_responses.method_names_from_class = functools.lru_cache(maxsize=None)(core_responses.method_names_from_class)


# werkzeug formats and logs a line for each request (7-12% of a write's time) to standard
# error, which the platform discards (local/src/emulator.rs); errors are still logged.
def _no_request_log(self, code="-", size="-"):
    pass


MotoRequestHandler.log_request = _no_request_log

# DynamoDB applies each write and its condition atomically; moto checks a condition, then writes,
# on whichever server thread has the request, so two conditional writes racing each other could
# both succeed (seen as two certificates claiming one device, six requests through a limit of
# five). Writes are applied one at a time here, as DynamoDB's guarantees promise.
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_write_lock = threading.Lock()
_call_action = DynamoHandler.call_action


def _atomic_call_action(self):
    if self._get_action() in WRITES:
        with _write_lock:
            return _call_action(self)
    return _call_action(self)


DynamoHandler.call_action = _atomic_call_action


# moto rolls a failed TransactWriteItems back by restoring a deep copy of every table it names,
# taken once per item of the transaction: each transaction costs time in proportion to the
# tables' size (a 100-item transaction over 20 000 Observations took seconds), so filing slowed
# as data grew. The same rollback with an undo log of the items the transaction names: each as
# it was before (or absent), put back if the transaction fails. moto's own code still runs the
# transaction (conditions, errors, cancellation reasons); only its table copies are skipped.
_in_transaction = threading.local()


class _CopyWithoutTables:
    """`copy` for moto's DynamoDB models: a Table copied inside a transaction is the table."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        if getattr(_in_transaction, "active", False) and isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


dynamodb_models.copy = _CopyWithoutTables()
_transact_write_items = DynamoDBBackend.transact_write_items


def _key_of(table, op):
    if "Key" in op:
        return op["Key"]
    attrs = op.get("Item", {})
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _undo_logged_transact_write_items(self, transact_items):
    before = []
    for item in transact_items if len(transact_items) <= 100 else []:
        try:
            _, op = next(iter(item.items()))
            table = self.tables[op["TableName"]]
            key = _key_of(table, op)
            before.append((table.name, key, copy.deepcopy(self.get_item(table.name, key))))
        except Exception:  # noqa: BLE001 moto validates the item and answers for it
            continue
    _in_transaction.active = True
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table_name, key, old in reversed(before):
            if old is None:
                if self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            else:
                self.put_item(table_name, old.to_json()["Attributes"])
        raise
    finally:
        _in_transaction.active = False


DynamoDBBackend.transact_write_items = _undo_logged_transact_write_items


# moto lists object versions by deep-copying every version of every object in the bucket,
# bytes included, into a new temporary file each: the local platform's S3 event source lists its
# buckets a few times a second, so a 100 MB inbox file was copied to disk a few times a second,
# and the copies (freed only by the cyclic collector) filled the disk during the 100 MB
# benchmark. A listed version here is the stored one's attributes over the same bytes; it never
# closes them (the stored version owns them). Only inside a listing: a copy of an object
# (CopyObject) still gets its own bytes.
_listing = threading.local()


class _ListedVersion(s3_models.FakeKey):
    __module__ = s3_models.__name__  # moto's model registry names a model's service by its module

    def dispose(self, garbage=False):
        pass

    def __del__(self):
        pass


class _CopyListedVersions:
    """`copy` for moto's S3 models: inside a listing, an object version is listed, not copied."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        # The listing copies each key's list of versions.
        if getattr(_listing, "active", False) and isinstance(value, list):
            return [_listed(v) if isinstance(v, s3_models.FakeKey) else copy.deepcopy(v) for v in value]
        return copy.deepcopy(value, memo)


def _listed(version):
    listed = object.__new__(_ListedVersion)
    listed.__dict__.update(version.__dict__)
    return listed


s3_models.copy = _CopyListedVersions()
_list_object_versions = s3_models.S3Backend.list_object_versions


def _list_versions_without_copies(self, *args, **kwargs):
    _listing.active = True
    try:
        return _list_object_versions(self, *args, **kwargs)
    finally:
        _listing.active = False


s3_models.S3Backend.list_object_versions = _list_versions_without_copies


# SQS drops a FIFO message whose deduplication id was sent in the last five minutes, whether or
# not the first one has been received and deleted since. moto compares only with the messages
# still in the queue, so a resend arriving after the consumer deleted the first copy got in
# (the connectors' retry test failed on this race). Each queue remembers the ids it took.
_add_fifo_message = sqs_models.Queue.add_message
_deduplication_lock = threading.Lock()


def _add_message_deduplicated_for_five_minutes(self, message):
    if not (self.fifo_queue and message.deduplication_id):
        return _add_fifo_message(self, message)
    per_group = self.attributes.get("DeduplicationScope") == "messageGroup"
    key = (message.group_id if per_group else None, message.deduplication_id)
    window_ms = sqs_models.DEDUPLICATION_TIME_IN_SECONDS * 1000
    with _deduplication_lock:
        taken = self.__dict__.setdefault("_deduplication_ids_taken", {})
        first = taken.get(key)
        if first is not None and message.sent_timestamp - first < window_ms:
            return None
        if len(taken) > 10_000:
            for old in [k for k, at in taken.items() if message.sent_timestamp - at >= window_ms]:
                del taken[old]
        taken[key] = message.sent_timestamp
    return _add_fifo_message(self, message)


sqs_models.Queue.add_message = _add_message_deduplicated_for_five_minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    # The tables are many long-lived objects; the collector's full passes over them paused every
    # request for tens of milliseconds as they grew (the tail of publish-to-stored latency).
    # Collection still runs, a tenth as often; what was loaded at start-up is left out of it.
    gc.set_threshold(7000, 10, 100)
    gc.freeze()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(f"READY {port}", flush=True)
    # Block until the parent goes away (EOF on stdin), then shut down cleanly.
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
