// The admin view: devices (register, assign, activate or block, API keys), firmware images and
// deployments with per-device progress, connectors and their refused messages, and the refused
// messages of every other path (dead letters).
import { useState } from "react";
import { seg, type Api, type Json } from "./api";
import { Failure, Loading, Notice, Section, useAsync, when } from "./ui";

type NoticeState = { kind: "ok" | "error"; text: string } | null;
const TABS = ["Devices", "Firmware", "Connectors", "Refused messages"] as const;
type Tab = (typeof TABS)[number];

export function Admin({ api, tab }: { api: Api; tab: string }) {
  const current: Tab = TABS.find((t) => slug(t) === tab) ?? "Devices";
  return (
    <div>
      <div className="page-head">
        <h1>Administration</h1>
      </div>
      <nav aria-label="Administration" className="tabs">
        {TABS.map((t) => (
          <a key={t} href={`#/admin/${slug(t)}`} aria-current={t === current ? "page" : undefined}>
            {t}
          </a>
        ))}
      </nav>
      {current === "Devices" && <DevicesAdmin api={api} />}
      {current === "Firmware" && <FirmwareAdmin api={api} />}
      {current === "Connectors" && <ConnectorsAdmin api={api} />}
      {current === "Refused messages" && <DeadLetters api={api} />}
    </div>
  );
}

function slug(t: string): string {
  return t.toLowerCase().replace(/ /g, "-");
}

/** Runs an action, says what happened, and reloads what it changed. */
function useAction(setNotice: (n: NoticeState) => void) {
  const [busy, setBusy] = useState(false);
  async function run(what: string, action: () => Promise<unknown>, done: string, after?: () => void) {
    setBusy(true);
    setNotice(null);
    try {
      await action();
      setNotice({ kind: "ok", text: done });
      after?.();
    } catch (e) {
      setNotice({ kind: "error", text: `Could not ${what}: ${(e as Error).message}` });
    } finally {
      setBusy(false);
    }
  }
  return { busy, run };
}

function DevicesAdmin({ api }: { api: Api }) {
  const [pages, setPages] = useState<string[]>([""]);
  // The pages shown so far, each from its cursor: "More devices" adds the next one.
  const list = useAsync<{ devices: Json[]; next: string | null }>(async () => {
    const devices: Json[] = [];
    let next: string | null = null;
    for (const cursor of pages) {
      const page = await api.get(`/admin/devices?limit=50${cursor ? `&next=${seg(cursor)}` : ""}`);
      devices.push(...page.devices);
      next = page.next ?? null;
    }
    return { devices, next };
  }, [pages.join("|")]);
  const [selected, setSelected] = useState<string | null>(null);
  const [notice, setNotice] = useState<NoticeState>(null);
  const { busy, run } = useAction(setNotice);
  const [form, setForm] = useState({ serialNumber: "", manufacturer: "", model: "", displayName: "" });

  function register(e: React.FormEvent) {
    e.preventDefault();
    const body = Object.fromEntries(Object.entries(form).filter(([, v]) => v.trim() !== ""));
    run(
      "register the device",
      async () => {
        const device = await api.post("/admin/devices", body);
        setSelected(device.thingName);
      },
      `Device registered.`,
      () => {
        setForm({ serialNumber: "", manufacturer: "", model: "", displayName: "" });
        list.reload();
      },
    );
  }

  return (
    <>
      <Notice notice={notice} />
      <Section title="Register a device">
        <form className="grid-form" onSubmit={register}>
          <label htmlFor="reg-serial">Serial number</label>
          <input id="reg-serial" required value={form.serialNumber} onChange={(e) => setForm({ ...form, serialNumber: e.target.value })} />
          <label htmlFor="reg-manufacturer">Manufacturer</label>
          <input id="reg-manufacturer" required value={form.manufacturer} onChange={(e) => setForm({ ...form, manufacturer: e.target.value })} />
          <label htmlFor="reg-model">Model</label>
          <input id="reg-model" value={form.model} onChange={(e) => setForm({ ...form, model: e.target.value })} />
          <label htmlFor="reg-name">Display name</label>
          <input id="reg-name" value={form.displayName} onChange={(e) => setForm({ ...form, displayName: e.target.value })} />
          <button type="submit" disabled={busy}>
            Register
          </button>
        </form>
      </Section>
      <Section title="Devices" actions={<button type="button" onClick={list.reload}>Refresh</button>}>
        {list.error && <Failure error={list.error} what="the devices" />}
        {!list.data && !list.error && <Loading what="the devices" />}
        {list.data && (
          <div className="table-wrap">
            <table className="devices-table">
              <thead>
                <tr>
                  <th scope="col">Thing name</th>
                  <th scope="col">Name</th>
                  <th scope="col">Model</th>
                  <th scope="col">Patient</th>
                  <th scope="col">Status</th>
                  <th scope="col">Firmware</th>
                  <th scope="col"><span className="visually-hidden">Manage</span></th>
                </tr>
              </thead>
              <tbody>
                {list.data.devices.map((d) => (
                  <tr key={d.thingName} data-device={d.thingName} aria-selected={selected === d.thingName}>
                    <td>{d.thingName}</td>
                    <td>{d.displayName || "—"}</td>
                    <td>{[d.manufacturer, d.model].filter(Boolean).join(" ")}</td>
                    <td>{d.patientId ? <a href={`#/patients/${seg(d.patientId)}`}>{d.patientId}</a> : "—"}</td>
                    <td><span className={`status status-${String(d.status).toLowerCase()}`}>{d.status}</span></td>
                    <td>{d.firmware?.version ?? "—"}</td>
                    <td>
                      <button type="button" onClick={() => setSelected(d.thingName)} aria-label={`Manage ${d.thingName}`}>
                        Manage
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {list.data.next && (
              <button type="button" onClick={() => setPages([...pages, list.data!.next!])}>
                More devices
              </button>
            )}
          </div>
        )}
      </Section>
      {selected && <DeviceManager key={selected} api={api} thingName={selected} onChanged={list.reload} />}
    </>
  );
}

function DeviceManager({ api, thingName, onChanged }: { api: Api; thingName: string; onChanged: () => void }) {
  const device = useAsync<Json>(() => api.get(`/admin/devices/${seg(thingName)}`), [thingName]);
  const keys = useAsync<Json>(() => api.get(`/admin/devices/${seg(thingName)}/api-keys`), [thingName]);
  const [notice, setNotice] = useState<NoticeState>(null);
  const { busy, run } = useAction(setNotice);
  const [patient, setPatient] = useState("");
  const [status, setStatus] = useState("ACTIVE");
  const [keyName, setKeyName] = useState("");
  const [keyDays, setKeyDays] = useState("365");
  const [newKey, setNewKey] = useState<string | null>(null);
  const base = `/admin/devices/${seg(thingName)}`;
  const changed = () => {
    device.reload();
    onChanged();
  };

  return (
    <Section title={`Device ${thingName}`}>
      <Notice notice={notice} />
      {device.error && <Failure error={device.error} what="the device" />}
      {device.data && (
        <p>
          Status <strong>{device.data.status}</strong> · patient <strong>{device.data.patientId ?? "none"}</strong> · certificate {device.data.certificateId ? "issued" : "none yet"}
        </p>
      )}
      <div className="manage-grid">
        <form
          className="stack-form"
          onSubmit={(e) => {
            e.preventDefault();
            run("assign the patient", () => api.put(`${base}/patient`, { patientId: patient.trim() }), `Patient ${patient.trim()} assigned to ${thingName}.`, changed);
          }}
        >
          <label htmlFor="assign-patient">Assign to patient</label>
          <input id="assign-patient" required value={patient} onChange={(e) => setPatient(e.target.value)} />
          <div className="row">
            <button type="submit" disabled={busy}>Assign</button>
            <button type="button" disabled={busy || !device.data?.patientId} onClick={() => run("unassign the patient", () => api.delete(`${base}/patient`), "Patient unassigned.", changed)}>
              Unassign
            </button>
          </div>
        </form>
        <form
          className="stack-form"
          onSubmit={(e) => {
            e.preventDefault();
            run("change the status", () => api.put(`${base}/status`, { status }), `${thingName} is now ${status}.`, changed);
          }}
        >
          <label htmlFor="device-status">Status</label>
          <select id="device-status" value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="ACTIVE">Active</option>
            <option value="INACTIVE">Inactive</option>
            <option value="BLOCKED">Blocked (its certificate is revoked)</option>
          </select>
          <button type="submit" disabled={busy}>Set status</button>
        </form>
      </div>
      <h3>API keys</h3>
      {newKey && (
        <div className="notice secret" role="status">
          <p>
            The new key is shown this once: copy it now. <code data-testid="new-api-key">{newKey}</code>
          </p>
          <button type="button" onClick={() => navigator.clipboard?.writeText(newKey)}>Copy</button>{" "}
          <button type="button" onClick={() => setNewKey(null)}>Done</button>
        </div>
      )}
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          run(
            "issue the key",
            async () => {
              const key = await api.post(`${base}/api-keys`, { name: keyName.trim(), expiresInDays: Number(keyDays) });
              setNewKey(key.apiKey);
            },
            "Key issued.",
            () => {
              setKeyName("");
              keys.reload();
            },
          );
        }}
      >
        <label htmlFor="key-name">Key name</label>
        <input id="key-name" required maxLength={128} value={keyName} onChange={(e) => setKeyName(e.target.value)} />
        <label htmlFor="key-days">Expires in (days)</label>
        <input id="key-days" type="number" min={1} max={3650} value={keyDays} onChange={(e) => setKeyDays(e.target.value)} />
        <button type="submit" disabled={busy}>Issue key</button>
      </form>
      {keys.error && <Failure error={keys.error} what="the API keys" />}
      {keys.data && (
        <ul className="keys">
          {keys.data.apiKeys.length === 0 && <li className="empty">No keys.</li>}
          {keys.data.apiKeys.map((k: Json) => (
            <li key={k.keyId}>
              <strong>{k.name}</strong> ({k.keyId}) · {k.active ? "active" : "inactive"} · created {when(k.createdAt)} · expires {when(k.expiresAt)} · last used {when(k.lastUsedAt)}
              {k.active && (
                <button type="button" disabled={busy} onClick={() => run("revoke the key", () => api.delete(`${base}/api-keys/${seg(k.keyId)}`), `Key ${k.name} revoked.`, keys.reload)}>
                  Revoke
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

function FirmwareAdmin({ api }: { api: Api }) {
  const images = useAsync<Json>(() => api.get("/admin/firmware"), []);
  const [notice, setNotice] = useState<NoticeState>(null);
  const { busy, run } = useAction(setNotice);
  const [firmwareId, setFirmwareId] = useState("");
  const [things, setThings] = useState("");
  const [allOfModel, setAllOfModel] = useState(false);
  const [listed, setListed] = useState(0);
  const [open, setOpen] = useState<string | null>(null);

  return (
    <>
      <Notice notice={notice} />
      <Section title="Firmware images" actions={<button type="button" onClick={images.reload}>Refresh</button>}>
        {images.error && <Failure error={images.error} what="the firmware images" />}
        {images.data &&
          (images.data.firmware.length === 0 ? (
            <p className="empty">No images registered (register one with POST /admin/firmware, then upload it).</p>
          ) : (
            <ul>
              {images.data.firmware.map((f: Json) => (
                <li key={f.firmwareId}>
                  <strong>{f.firmwareId}</strong> · {f.deviceModel} {f.version} · {f.sizeBytes} bytes{f.status ? ` · ${f.status}` : ""}
                </li>
              ))}
            </ul>
          ))}
      </Section>
      <Section title="Deploy">
        <form
          className="grid-form"
          onSubmit={(e) => {
            e.preventDefault();
            const body: Json = { firmwareId };
            if (allOfModel) body.allDevicesOfModel = true;
            else body.thingNames = things.split(/[\s,]+/).filter(Boolean);
            run(
              "start the deployment",
              async () => {
                const d = await api.post("/admin/firmware/deployments", body);
                setOpen(d.deploymentId);
                setListed((n) => n + 1);
              },
              "Deployment started.",
            );
          }}
        >
          <label htmlFor="deploy-firmware">Image</label>
          <select id="deploy-firmware" required value={firmwareId} onChange={(e) => setFirmwareId(e.target.value)}>
            <option value="">Choose an image</option>
            {(images.data?.firmware ?? []).map((f: Json) => (
              <option key={f.firmwareId} value={f.firmwareId}>
                {f.firmwareId}
              </option>
            ))}
          </select>
          <label htmlFor="deploy-things">Devices (thing names)</label>
          <input id="deploy-things" value={things} onChange={(e) => setThings(e.target.value)} disabled={allOfModel} placeholder="acme-medical-0042, ..." />
          <label htmlFor="deploy-all">Every device of the image's model</label>
          <input id="deploy-all" type="checkbox" checked={allOfModel} onChange={(e) => setAllOfModel(e.target.checked)} />
          <button type="submit" disabled={busy}>Deploy</button>
        </form>
      </Section>
      <DeploymentList key={listed} api={api} open={open} onOpen={setOpen} />
      {open && <Deployment key={open} api={api} id={open} onChanged={() => setListed((n) => n + 1)} />}
    </>
  );
}

/** Deployments newest first, a page at a time, each with how many of its devices finished. */
function DeploymentList({ api, open, onOpen }: { api: Api; open: string | null; onOpen: (id: string) => void }) {
  const [pages, setPages] = useState<Json[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const first = useAsync<Json>(() => api.get("/admin/firmware/deployments?limit=25"), []);
  const [more, setMore] = useState<{ loading: boolean; error: Error | null }>({ loading: false, error: null });
  const shown = [...(first.data?.deployments ?? []), ...pages.flatMap((p) => p.deployments)];
  const next = pages.length ? cursor : first.data?.next ?? null;
  const loadMore = async () => {
    if (!next) return;
    setMore({ loading: true, error: null });
    try {
      const page = await api.get(`/admin/firmware/deployments?limit=25&next=${encodeURIComponent(next)}`);
      setPages((p) => [...p, page]);
      setCursor(page.next ?? null);
      setMore({ loading: false, error: null });
    } catch (error) {
      setMore({ loading: false, error: error instanceof Error ? error : new Error(String(error)) });
    }
  };
  return (
    <Section title="Deployments" actions={<button type="button" onClick={() => { setPages([]); setCursor(null); first.reload(); }}>Refresh</button>}>
      {first.error && <Failure error={first.error} what="the deployments" />}
      {!first.data && !first.error && <Loading what="the deployments" />}
      {first.data && shown.length === 0 && <p className="empty">No deployments yet.</p>}
      {shown.length > 0 && (
        <div className="table-wrap">
          <table className="deployments">
            <caption className="visually-hidden">Firmware deployments, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Started</th>
                <th scope="col">Image</th>
                <th scope="col">Status</th>
                <th scope="col">Devices finished</th>
                <th scope="col"><span className="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {shown.map((d: Json) => (
                <tr key={d.deploymentId} data-deployment={d.deploymentId} aria-selected={open === d.deploymentId}>
                  <td>{when(d.createdAt)}</td>
                  <td>
                    {d.deviceModel} {d.version}
                    <div className="meta">{d.deploymentId}</div>
                  </td>
                  <td>
                    {d.status}
                    {d.statusReason ? <div className="meta">{d.statusReason}</div> : null}
                  </td>
                  <td>
                    <progress max={Math.max(d.devices, 1)} value={d.finished} aria-label={`Devices finished of deployment ${d.deploymentId}`} /> {d.finished} of {d.devices}
                  </td>
                  <td>
                    <button type="button" onClick={() => onOpen(d.deploymentId)} aria-pressed={open === d.deploymentId}>
                      Devices
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {more.error ? <Failure error={more.error} what="more deployments" /> : null}
      {next && (
        <button type="button" onClick={loadMore} disabled={more.loading}>
          {more.loading ? "Loading…" : "More deployments"}
        </button>
      )}
    </Section>
  );
}

/** One deployment: each device's status (live from IoT Jobs while it runs), and cancelling it. */
function Deployment({ api, id, onChanged }: { api: Api; id: string; onChanged: () => void }) {
  const d = useAsync<Json>(() => api.get(`/admin/firmware/deployments/${seg(id)}`), [id]);
  const [notice, setNotice] = useState<NoticeState>(null);
  const { busy, run } = useAction(setNotice);
  const title = `Deployment ${id}`;
  if (d.error) return <Failure error={d.error} what={`deployment ${id}`} />;
  if (!d.data) return <Loading what={`deployment ${id}`} />;
  const p = d.data.progress ?? {};
  const running = d.data.status === "IN_PROGRESS" || d.data.status === "STARTING";
  return (
    <Section
      title={title}
      actions={
        <>
          <button type="button" onClick={d.reload}>Refresh</button>
          {running && (
            <button
              type="button"
              disabled={busy}
              onClick={() =>
                run(
                  "cancel the deployment",
                  async () => {
                    await api.post(`/admin/firmware/deployments/${seg(id)}/cancel`, {});
                    d.reload();
                    onChanged();
                  },
                  "Deployment cancelled: devices not started get nothing, devices updating finish.",
                )
              }
            >
              Cancel deployment
            </button>
          )}
        </>
      }
    >
      <Notice notice={notice} />
      <p>
        {d.data.deviceModel} {d.data.version} · <strong>{d.data.status}</strong>
        {d.data.statusReason ? ` · ${d.data.statusReason}` : ""}
      </p>
      <progress max={100} value={p.percentComplete ?? 0} aria-label={`Deployment ${id} progress`} /> {p.percentComplete ?? 0}% ·{" "}
      {Object.entries(p)
        .filter(([k, v]) => k !== "percentComplete" && v !== 0)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}
      <ul>
        {(d.data.devices ?? []).map((x: Json) => (
          <li key={x.thingName}>
            {x.thingName}: {x.status}
            {x.statusDetails && Object.keys(x.statusDetails).length ? ` (${JSON.stringify(x.statusDetails)})` : ""}
          </li>
        ))}
      </ul>
    </Section>
  );
}

function ConnectorsAdmin({ api }: { api: Api }) {
  const connectors = useAsync<Json>(() => api.get("/connectors"), []);
  const [chosen, setChosen] = useState<string | null>(null);
  return (
    <>
      <Section title="Connectors" actions={<button type="button" onClick={connectors.reload}>Refresh</button>}>
        {connectors.error && <Failure error={connectors.error} what="the connectors" />}
        {connectors.data &&
          (connectors.data.connectors.length === 0 ? (
            <p className="empty">No connectors.</p>
          ) : (
            <ul>
              {connectors.data.connectors.map((c: Json) => (
                <li key={c.name}>
                  <strong>{c.name}</strong> · {c.identityResolutionType} · {c.enabled ? "enabled" : "disabled"} · updated {when(c.updatedAt)}{" "}
                  <button type="button" onClick={() => setChosen(c.name)} aria-pressed={chosen === c.name}>
                    Errors
                  </button>
                </li>
              ))}
            </ul>
          ))}
      </Section>
      {chosen && <ConnectorErrors key={chosen} api={api} name={chosen} />}
    </>
  );
}

function ConnectorErrors({ api, name }: { api: Api; name: string }) {
  const errors = useAsync<Json>(() => api.get(`/connectors/${seg(name)}/errors?limit=50`), [name]);
  return (
    <Section title={`Errors of ${name}`}>
      {errors.error && <Failure error={errors.error} what="the connector's errors" />}
      {errors.data && <Letters letters={errors.data.errors} kind={(e) => `${e.stage} · ${e.type}`} />}
    </Section>
  );
}

const SOURCES = ["fhir-ingest", "provisioning-hook", "upload-link", "upload-registered", "job-events", "iot-vitals", "iot-vitals-batch", "inbox-processor", "observation-sets"];

function DeadLetters({ api }: { api: Api }) {
  const [source, setSource] = useState(SOURCES[0]);
  const letters = useAsync<Json>(() => api.get(`/admin/dead-letters?source=${seg(source)}&limit=50`), [source]);
  return (
    <Section title="Refused messages">
      <div className="inline-form">
        <label htmlFor="letters-source">Path</label>
        <select id="letters-source" value={source} onChange={(e) => setSource(e.target.value)}>
          {SOURCES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
        <button type="button" onClick={letters.reload}>Refresh</button>
      </div>
      {letters.error && <Failure error={letters.error} what="the refused messages" />}
      {letters.data && <Letters letters={letters.data.deadLetters} kind={(l) => `${l.reasonCode}${l.thingName ? ` · ${l.thingName}` : ""}`} />}
    </Section>
  );
}

function Letters({ letters, kind }: { letters: Json[]; kind: (l: Json) => string }) {
  if (letters.length === 0) return <p className="empty">Nothing refused.</p>;
  return (
    <ul className="letters">
      {letters.map((l) => (
        <li key={l.id}>
          <p>
            <strong>{kind(l)}</strong> · {when(l.receivedAt ?? l.recordedAt)}
          </p>
          <p>{l.reason}</p>
          <details>
            <summary>Raw message{l.rawPayloadTruncated ? " (first 256 KiB)" : ""}</summary>
            <pre>{l.rawPayload}</pre>
          </details>
        </li>
      ))}
    </ul>
  );
}
