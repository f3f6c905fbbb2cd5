// Small shared pieces: loading and error states said plainly, severity shown as text and
// colour (never colour alone), times as people read them.
import { useCallback, useEffect, useState, type ReactNode } from "react";
import { ApiError } from "./api";

export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): { data: T | undefined; error: Error | undefined; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const [round, setRound] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error: Error) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, round]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function Failure({ error, what }: { error: Error; what: string }) {
  const status = error instanceof ApiError && error.status ? ` (HTTP ${error.status})` : "";
  const field = error instanceof ApiError && error.field ? ` — field: ${error.field}` : "";
  return (
    <div className="failure" role="alert">
      <strong>Could not load {what}{status}:</strong> {error.message}
      {field}
    </div>
  );
}

/** The outcome of an action, announced to screen readers. */
export function Notice({ notice }: { notice: { kind: "ok" | "error"; text: string } | null }) {
  if (!notice) return <div aria-live="polite" />;
  return (
    <div className={notice.kind === "ok" ? "notice" : "failure"} role={notice.kind === "ok" ? "status" : "alert"} aria-live="polite">
      {notice.text}
    </div>
  );
}

export function SeverityBadge({ severity }: { severity: string }) {
  return <span className={`severity severity-${severity}`}>{severity}</span>;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** How long ago, in the largest whole unit: "5 min", "3 h", "2 d". */
export function age(iso: string | null | undefined, now = Date.now()): string {
  const t = Date.parse(iso ?? "");
  if (Number.isNaN(t)) return "—";
  const minutes = Math.max(0, Math.floor((now - t) / 60000));
  if (minutes < 60) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h`;
  return `${Math.floor(minutes / 1440)} d`;
}

export function Section({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  const id = `section-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return (
    <section className="card" aria-labelledby={id}>
      <div className="card-head">
        <h2 id={id}>{title}</h2>
        {actions && <div className="card-actions">{actions}</div>}
      </div>
      {children}
    </section>
  );
}
