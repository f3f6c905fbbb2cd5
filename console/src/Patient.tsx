// A patient: latest vitals ($lastn), a trend chart per vital sign with the NEWS2 bands shaded,
// the devices that sent the readings, their documents, the patient's open alerts, and messages
// with the Polaris handshake (read, confirm).
import { useMemo, useState } from "react";
import { CartesianGrid, ComposedChart, Line, ReferenceArea, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { seg, type Api, type Json } from "./api";
import type { Person } from "./auth";
import { BAND_COLOURS, BATTERY_CODES, CHARTS, LOINC, deviceOf, display, effectiveAt, title, toPoint, type Point, type VitalChart } from "./vitals";
import { AlertHistory } from "./Worklist";
import { Failure, Loading, Notice, Section, SeverityBadge, age, useAsync, when } from "./ui";

const PERIODS: { key: string; label: string; days: number | null }[] = [
  { key: "1d", label: "24 hours", days: 1 },
  { key: "7d", label: "7 days", days: 7 },
  { key: "30d", label: "30 days", days: 30 },
  { key: "365d", label: "1 year", days: 365 },
  { key: "all", label: "All", days: null },
];

/** At most this many readings per chart: the newest, so a long history stays quick to draw. */
const MAX_POINTS = 1000;

export function PatientView({ api, person, patientId }: { api: Api; person: Person; patientId: string }) {
  const [period, setPeriod] = useState("all");
  const days = PERIODS.find((p) => p.key === period)?.days ?? null;
  const since = days === null ? null : new Date(Date.now() - days * 86400000).toISOString();
  const latest = useAsync<Json[]>(() => api.searchAll(`/fhir/Observation/$lastn?patient=${seg(patientId)}`, 200), [patientId]);
  const series = useAsync<Json[][]>(
    () =>
      Promise.all(
        CHARTS.map((chart) => {
          const codes = chart.codes.map((c) => `${LOINC}|${c}`).join(",");
          const date = since ? `&date=ge${seg(since)}` : "";
          return api.searchAll(`/fhir/Observation?patient=${seg(patientId)}&code=${seg(codes)}${date}&_sort=-date&_count=200`, MAX_POINTS);
        }),
      ),
    [patientId, since?.slice(0, 16)],
  );

  return (
    <div>
      <div className="page-head">
        <h1>Patient {patientId}</h1>
        <a href="#/worklist">Back to the worklist</a>
      </div>
      <Section title="Latest vitals">
        {latest.error && <Failure error={latest.error} what="the latest vitals" />}
        {!latest.data && !latest.error && <Loading what="the latest vitals" />}
        {latest.data && <LatestVitals observations={latest.data} />}
      </Section>
      <Section
        title="Trends"
        actions={
          <div className="period" role="group" aria-label="Period">
            {PERIODS.map((p) => (
              <button key={p.key} type="button" aria-pressed={period === p.key} onClick={() => setPeriod(p.key)}>
                {p.label}
              </button>
            ))}
          </div>
        }
      >
        {series.error && <Failure error={series.error} what="the readings" />}
        {!series.data && !series.error && <Loading what="the readings" />}
        {series.data && (
          <div className="charts">
            {CHARTS.map((chart, i) => (
              <TrendChart key={chart.key} chart={chart} observations={series.data![i]} since={since} />
            ))}
          </div>
        )}
      </Section>
      <PatientAlerts api={api} patientId={patientId} />
      <Devices api={api} patientId={patientId} latest={latest.data} series={series.data} />
      <Messages api={api} person={person} patientId={patientId} />
    </div>
  );
}

function LatestVitals({ observations }: { observations: Json[] }) {
  if (observations.length === 0) return <p className="empty">No readings filed for this patient.</p>;
  const sorted = [...observations].sort((a, b) => title(a).localeCompare(title(b)));
  return (
    <dl className="latest">
      {sorted.map((o) => (
        <div key={o.id} className="vital">
          <dt>{title(o)}</dt>
          <dd>
            <span className="value">{display(o)}</span>
            <span className="hint">
              {when(effectiveAt(o))}
              {deviceOf(o) ? ` · ${deviceOf(o)}` : ""}
            </span>
          </dd>
        </div>
      ))}
    </dl>
  );
}

function TrendChart({ chart, observations, since }: { chart: VitalChart; observations: Json[]; since: string | null }) {
  const points: Point[] = useMemo(
    () => observations.map((o) => toPoint(chart, o)).filter((p): p is Point => p !== null).sort((a, b) => a.at - b.at),
    [chart, observations],
  );
  const headingId = `chart-${chart.key}`;
  if (points.length === 0) {
    return (
      <figure className="chart" aria-labelledby={headingId} data-chart={chart.key} data-points={0}>
        <figcaption id={headingId}>{chart.label}</figcaption>
        <p className="empty">No readings in this period.</p>
      </figure>
    );
  }
  const values = points.map((p) => p.value);
  const [low, high] = [Math.min(chart.domain[0], ...values), Math.max(chart.domain[1], ...values)];
  // A chosen period runs up to now; "All" spans the readings themselves, so old readings are not
  // squeezed against the left edge by the months since.
  const last = points[points.length - 1].at;
  const start = since ? Date.parse(since) : points[0].at;
  const end = since ? Math.max(Date.now(), last) : last;
  const span = Math.max(end - start, 3600000);
  // Days for long spans; times for short ones, with the day too unless they are from the last day.
  const recent = Date.now() - start < 86400000;
  const format: Intl.DateTimeFormatOptions =
    span > 2 * 86400000 ? { month: "short", day: "numeric" } : recent ? { hour: "2-digit", minute: "2-digit" } : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  const tick = (t: number) => new Date(t).toLocaleString(undefined, format);
  return (
    <figure className="chart" aria-labelledby={headingId} data-chart={chart.key} data-points={points.length}>
      <figcaption id={headingId}>
        {chart.label} ({chart.unit}) — {points.length} reading{points.length === 1 ? "" : "s"}, NEWS2 bands shaded
      </figcaption>
      <div className="chart-area">
        <ResponsiveContainer width="100%" height={220}>
          <ComposedChart data={points} margin={{ top: 8, right: 16, bottom: 8, left: 0 }} accessibilityLayer>
            {chart.bands
              .filter((b) => b.score > 0)
              .map((b) => (
                <ReferenceArea key={b.from} y1={Math.max(b.from, low)} y2={Math.min(b.to, high)} fill={BAND_COLOURS[b.score]} fillOpacity={0.7} ifOverflow="hidden" />
              ))}
            <CartesianGrid strokeDasharray="3 3" stroke="#d0d5dd" />
            <XAxis dataKey="at" type="number" scale="time" domain={[start - span * 0.03, Math.max(end, start + span) + span * 0.03]} tickFormatter={tick} />
            <YAxis domain={[low, high]} width={44} allowDecimals />
            <Tooltip
              labelFormatter={(t) => when(new Date(Number(t)).toISOString())}
              formatter={(value, _name, item) => [`${value} ${chart.unit}${(item.payload as Point).filedAs ? ` (filed as ${(item.payload as Point).filedAs})` : ""}`, chart.label]}
            />
            <Line type="linear" dataKey="value" stroke="#1d4ed8" strokeWidth={2} dot={{ r: 3, className: "reading-dot" }} isAnimationActive={false} />
          </ComposedChart>
        </ResponsiveContainer>
      </div>
      <details>
        <summary>The readings as a table</summary>
        <table>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">{chart.label}</th>
              <th scope="col">NEWS2 score</th>
            </tr>
          </thead>
          <tbody>
            {[...points].reverse().map((p) => (
              <tr key={p.observationId}>
                <td>{when(new Date(p.at).toISOString())}</td>
                <td>
                  {p.value} {chart.unit}
                  {p.filedAs ? ` (filed as ${p.filedAs})` : ""}
                </td>
                <td>{chart.bands.find((b) => p.value >= b.from && p.value < b.to)?.score ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}

function PatientAlerts({ api, patientId }: { api: Api; patientId: string }) {
  const alerts = useAsync<Json>(() => api.get(`/patients/${seg(patientId)}/alerts?limit=20`), [patientId]);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <Section title="Alerts">
      {alerts.error && <Failure error={alerts.error} what="the alerts" />}
      {!alerts.data && !alerts.error && <Loading what="the alerts" />}
      {alerts.data &&
        (alerts.data.alerts.length === 0 ? (
          <p className="empty">No alerts.</p>
        ) : (
          <ul className="alerts">
            {alerts.data.alerts.map((a: Json) => (
              <li key={a.alertId}>
                <SeverityBadge severity={a.severity} /> {a.kind === "news2" ? `NEWS2 ${a.score ?? "—"}` : a.kind} · {a.status} · raised {when(a.raisedAt)}
                {a.closedBy ? ` · closed by ${a.closedBy}` : ""}{" "}
                <button type="button" aria-expanded={open === a.alertId} onClick={() => setOpen(open === a.alertId ? null : a.alertId)}>
                  History
                </button>
                {open === a.alertId && <AlertHistory api={api} alert={a} />}
              </li>
            ))}
          </ul>
        ))}
    </Section>
  );
}

/** The devices that sent the patient's readings, from the readings themselves: the FHIR API
 * reads a device by id, and a patient's readings name theirs. Besides the charted vital signs,
 * the newest readings of any code count, so a device that reports only its battery or a
 * manufacturer's code is listed with its last contact too. */
function Devices({ api, patientId, latest, series }: { api: Api; patientId: string; latest?: Json[]; series?: Json[][] }) {
  const recent = useAsync<Json[]>(() => api.searchAll(`/fhir/Observation?patient=${seg(patientId)}&_sort=-date&_count=200`, 200), [patientId]);
  const contacts = useMemo(() => {
    const last = new Map<string, string>();
    for (const o of [...(latest ?? []), ...(series ?? []).flat(), ...(recent.data ?? [])]) {
      const device = deviceOf(o);
      const at = effectiveAt(o);
      if (device && at && (!last.has(device) || last.get(device)! < at)) last.set(device, at);
    }
    return last;
  }, [latest, series, recent.data]);
  const ids = [...contacts.keys()].sort();
  const devices = useAsync<{ device: Json | null; error?: string; battery: Json | null; documents: Json[] }[]>(
    () =>
      Promise.all(
        ids.map(async (id) => {
          const [device, battery, documents] = await Promise.all([
            api.get(`/fhir/Device/${seg(id)}`).then((d) => ({ d, e: undefined as string | undefined }), (e: Error) => ({ d: null, e: e.message })),
            api.searchAll(`/fhir/Observation?patient=${seg(patientId)}&device=${seg(id)}&code=${seg(BATTERY_CODES.join(","))}&_sort=-date&_count=1`, 1).then((b) => b[0] ?? null, () => null),
            api.get(`/devices/${seg(id)}/documents?limit=10`).then((b) => (b.entry ?? []).map((e: Json) => e.resource), () => []),
          ]);
          return { device: device.d, error: device.e, battery, documents };
        }),
      ),
    [ids.join(","), patientId],
  );
  return (
    <Section title="Devices and documents">
      {ids.length === 0 && <p className="empty">No device has sent readings for this patient.</p>}
      {devices.error && <Failure error={devices.error} what="the devices" />}
      {ids.length > 0 && !devices.data && !devices.error && <Loading what="the devices" />}
      {devices.data && (
        <ul className="devices">
          {devices.data.map(({ device, error, battery, documents }, i) => (
            <li key={ids[i]} className="device">
              <h3>{device?.deviceName?.[0]?.name ?? ids[i]}</h3>
              {error && <p className="failure" role="alert">Could not read device {ids[i]}: {error}</p>}
              <dl className="facts">
                <dt>Device</dt>
                <dd>{ids[i]}</dd>
                {device && (
                  <>
                    <dt>Model</dt>
                    <dd>{[device.manufacturer, device.modelNumber].filter(Boolean).join(" ") || "—"}</dd>
                    <dt>Status</dt>
                    <dd>{device.note?.[0]?.text?.replace("Vitalwire status: ", "") ?? device.status}</dd>
                    <dt>Firmware</dt>
                    <dd>{device.version?.[0]?.value ?? "—"}</dd>
                  </>
                )}
                <dt>Last contact</dt>
                <dd>
                  {when(contacts.get(ids[i]))} ({age(contacts.get(ids[i]))} ago)
                </dd>
                <dt>Battery</dt>
                <dd>{battery ? `${display(battery)} (${when(effectiveAt(battery))})` : "not reported"}</dd>
              </dl>
              <h4>Documents</h4>
              {documents.length === 0 ? (
                <p className="empty">None uploaded.</p>
              ) : (
                <ul>
                  {documents.map((d) => (
                    <li key={d.id}>
                      {d.content?.[0]?.attachment?.title ?? d.description ?? d.id} · {d.content?.[0]?.attachment?.contentType ?? ""} · {when(d.date)}
                    </li>
                  ))}
                </ul>
              )}
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

/** Polaris's time format: ISO 8601 with a fraction and an offset. */
function polarisNow(): string {
  return new Date().toISOString().replace("Z", "+00:00");
}

function Messages({ api, person, patientId }: { api: Api; person: Person; patientId: string }) {
  // A clinician reads their own conversation with the patient; an admin every message of the patient.
  const party = person.role === "admin" ? patientId : person.subject;
  const messages = useAsync<Json[]>(
    () =>
      api
        .get<Json[]>(`/dhos/v1/sender_or_receiver/${seg(party)}/message`)
        .then((all) => all.filter((m) => m.sender === patientId || m.receiver === patientId).sort((a, b) => (a.created < b.created ? 1 : -1))),
    [party, patientId],
  );
  const [text, setText] = useState("");
  const [notice, setNotice] = useState<{ kind: "ok" | "error"; text: string } | null>(null);

  async function send(e: React.FormEvent) {
    e.preventDefault();
    setNotice(null);
    try {
      await api.post("/dhos/v2/message", {
        sender: person.subject, sender_type: "clinician", receiver: patientId, receiver_type: "patient",
        content: text, message_type: { value: 0 },
      });
      setText("");
      setNotice({ kind: "ok", text: "Message sent." });
      messages.reload();
    } catch (err) {
      setNotice({ kind: "error", text: `Could not send the message: ${(err as Error).message}` });
    }
  }

  async function mark(m: Json, change: Json, done: string) {
    setNotice(null);
    try {
      await api.patch(`/dhos/v1/message/${seg(m.uuid)}`, change);
      setNotice({ kind: "ok", text: done });
      messages.reload();
    } catch (err) {
      setNotice({ kind: "error", text: `Could not update the message: ${(err as Error).message}` });
    }
  }

  return (
    <Section title="Messages">
      <Notice notice={notice} />
      {messages.error && <Failure error={messages.error} what="the messages" />}
      {!messages.data && !messages.error && <Loading what="the messages" />}
      {messages.data &&
        (messages.data.length === 0 ? (
          <p className="empty">No messages with this patient.</p>
        ) : (
          <ul className="messages">
            {messages.data.map((m) => {
              const mine = m.receiver === person.subject;
              return (
                <li key={m.uuid} className={m.sender === patientId ? "from-patient" : "to-patient"}>
                  <p className="meta">
                    {m.sender_type} {m.sender} → {m.receiver_type} {m.receiver} · {when(m.created)}
                  </p>
                  <p>{m.content}</p>
                  <p className="meta">
                    {m.retrieved ? `Read ${when(m.retrieved)}` : "Not read"} · {m.confirmed ? `Confirmed ${when(m.confirmed)}${m.confirmed_by ? ` by ${m.confirmed_by}` : ""}` : "Not confirmed"}
                  </p>
                  {mine && !m.retrieved && (
                    <button type="button" onClick={() => mark(m, { retrieved: polarisNow() }, "Marked as read.")}>
                      Mark read
                    </button>
                  )}
                  {mine && !m.confirmed && (
                    <button type="button" onClick={() => mark(m, { confirmed: polarisNow(), confirmed_by: person.subject }, "Confirmed.")}>
                      Confirm
                    </button>
                  )}
                </li>
              );
            })}
          </ul>
        ))}
      {person.role === "clinician" && (
        <form className="stack-form" onSubmit={send}>
          <label htmlFor="message-text">Message to the patient</label>
          <textarea id="message-text" value={text} onChange={(e) => setText(e.target.value)} required rows={3} />
          <button type="submit" disabled={!text.trim()}>
            Send
          </button>
        </form>
      )}
    </Section>
  );
}
