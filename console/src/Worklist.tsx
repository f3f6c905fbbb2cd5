// The worklist: the open alerts of the clinician's patients, highest severity then oldest first
// (the platform's order), with what scored, the flow's stage, and the actions a clinician takes.
import { Fragment, useEffect, useState } from "react";
import { seg, type Api, type Json } from "./api";
import type { Person } from "./auth";
import { PARAMETER_LABELS } from "./vitals";
import { Failure, Loading, Notice, SeverityBadge, age, useAsync, when } from "./ui";

const STAGES: Record<string, string> = {
  asking_patient: "Asking the patient",
  answered: "Patient answered",
  escalated: "Escalated",
  acknowledged: "Acknowledged",
  resolved: "Resolved",
};

export function Worklist({ api, person }: { api: Api; person: Person }) {
  const [clinician, setClinician] = useState(person.role === "admin" ? "" : person.subject);
  const [chosen, setChosen] = useState(clinician);
  const list = useAsync<Json | null>(
    () => (chosen || person.role !== "admin" ? api.get(`/worklist${person.role === "admin" ? `?clinicianId=${seg(chosen)}` : ""}`) : Promise.resolve(null)),
    [chosen],
  );
  const [open, setOpen] = useState<string | null>(null);
  const [notice, setNotice] = useState<{ kind: "ok" | "error"; text: string } | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  // New alerts arrive without anyone asking: look again every 30 seconds.
  useEffect(() => {
    const timer = window.setInterval(list.reload, 30000);
    return () => window.clearInterval(timer);
  }, [list.reload]);

  async function act(alert: Json, action: "acknowledge" | "resolve") {
    setBusy(`${alert.alertId}:${action}`);
    setNotice(null);
    try {
      await api.post(`/patients/${seg(alert.patientId)}/alerts/${seg(alert.alertId)}/${action}`);
      setNotice({ kind: "ok", text: `Alert for patient ${alert.patientId} ${action === "acknowledge" ? "acknowledged" : "resolved"}.` });
      list.reload();
    } catch (e) {
      setNotice({ kind: "error", text: `Could not ${action} the alert: ${(e as Error).message}` });
    } finally {
      setBusy(null);
    }
  }

  return (
    <div>
      <div className="page-head">
        <h1>Worklist</h1>
        <button type="button" onClick={list.reload} disabled={list.loading}>
          {list.loading ? "Refreshing…" : "Refresh"}
        </button>
      </div>
      {person.role === "admin" && (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            setChosen(clinician.trim());
          }}
        >
          <label htmlFor="worklist-clinician">Clinician id</label>
          <input id="worklist-clinician" value={clinician} onChange={(e) => setClinician(e.target.value)} placeholder="e.g. nurse-1" />
          <button type="submit">Show worklist</button>
        </form>
      )}
      <Notice notice={notice} />
      {list.error && <Failure error={list.error} what="the worklist" />}
      {!list.data && list.loading && <Loading what="the worklist" />}
      {list.data && (
        <>
          <p className="summary">
            {list.data.alerts.length} open alert{list.data.alerts.length === 1 ? "" : "s"} among {list.data.patients} patient
            {list.data.patients === 1 ? "" : "s"} in {list.data.clinicianId}'s care.
          </p>
          {list.data.alerts.length === 0 ? (
            <p className="empty">No open alerts.</p>
          ) : (
            <div className="table-wrap">
              <table className="worklist">
                <caption className="visually-hidden">Open alerts, highest severity then oldest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Severity</th>
                    <th scope="col">Patient</th>
                    <th scope="col">Score</th>
                    <th scope="col">What scored</th>
                    <th scope="col">Raised</th>
                    <th scope="col">Stage</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {list.data.alerts.map((alert: Json) => {
                    const stage = alert.flow?.stage as string | undefined;
                    const taken = stage === "acknowledged" || stage === "resolved";
                    return (
                      <Fragment key={alert.alertId}>
                        <tr data-alert={alert.alertId}>
                          <td><SeverityBadge severity={alert.severity} /></td>
                          <td className="patient"><a href={`#/patients/${seg(alert.patientId)}`}>{alert.patientId}</a></td>
                          <td>
                            {alert.kind === "news2" ? `NEWS2 ${alert.score ?? "—"}` : alert.kind.replace("_", " ")}
                            {alert.partialSet && <span className="hint"> (partial set)</span>}
                          </td>
                          <td>
                            <ul className="scored">
                              {(alert.contributingReadings ?? [])
                                .filter((c: Json) => c.score === undefined || c.score === null || c.score > 0)
                                .map((c: Json) => (
                                  <li key={c.parameter}>
                                    {PARAMETER_LABELS[c.parameter] ?? c.parameter} {c.value} {c.unit}
                                    {typeof c.score === "number" && <span className="score"> scores {c.score}</span>}
                                  </li>
                                ))}
                            </ul>
                          </td>
                          <td title={when(alert.raisedAt)}>{age(alert.raisedAt)} ago</td>
                          <td className="stage">{stage ? STAGES[stage] ?? stage : "—"}</td>
                          <td className="actions">
                            <button type="button" onClick={() => act(alert, "acknowledge")} disabled={taken || busy !== null} aria-label={`Acknowledge the alert for patient ${alert.patientId}`}>
                              {busy === `${alert.alertId}:acknowledge` ? "Acknowledging…" : "Acknowledge"}
                            </button>
                            <button type="button" onClick={() => act(alert, "resolve")} disabled={busy !== null} aria-label={`Resolve the alert for patient ${alert.patientId}`}>
                              {busy === `${alert.alertId}:resolve` ? "Resolving…" : "Resolve"}
                            </button>
                            <button type="button" aria-expanded={open === alert.alertId} onClick={() => setOpen(open === alert.alertId ? null : alert.alertId)} aria-label={`History of the alert for patient ${alert.patientId}`}>
                              History
                            </button>
                          </td>
                        </tr>
                        {open === alert.alertId && (
                          <tr className="history-row">
                            <td colSpan={7}>
                              <AlertHistory api={api} alert={alert} />
                            </td>
                          </tr>
                        )}
                      </Fragment>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </div>
  );
}

export function AlertHistory({ api, alert }: { api: Api; alert: Json }) {
  const history = useAsync<Json>(() => api.get(`/patients/${seg(alert.patientId)}/alerts/${seg(alert.alertId)}/history`), [alert.alertId, alert.flow?.version]);
  if (history.error) return <Failure error={history.error} what="the alert's history" />;
  if (!history.data) return <Loading what="the alert's history" />;
  const { steps, notifications } = history.data;
  return (
    <div className="history" aria-label="Alert history">
      <h3>Steps</h3>
      <ol>
        {steps.map((s: Json) => (
          <li key={s.version}>
            <time dateTime={s.at}>{when(s.at)}</time>: {s.event.replaceAll("_", " ")} by {s.by}
            {s.from ? ` (${STAGES[s.from] ?? s.from} → ${STAGES[s.to] ?? s.to})` : ` (${STAGES[s.to] ?? s.to})`}
            {s.answer && `, answer: ${s.answer}`}
          </li>
        ))}
      </ol>
      <h3>Messages and notifications</h3>
      {notifications.length === 0 ? (
        <p className="empty">None sent.</p>
      ) : (
        <ul>
          {notifications.map((n: Json) => (
            <li key={n.deliveryId}>
              {n.channel} to {n.recipient} {n.recipientId}: {n.status}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
