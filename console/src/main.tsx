// The console's start: read config.json, finish a sign-in the identity provider just returned,
// then show the page the hash names (#/worklist, #/patients/<id>, #/admin/<tab>). Hash routes
// need no server rewrites, so S3 + CloudFront and the local platform serve the same files.
import { StrictMode, Suspense, lazy, useEffect, useMemo, useState } from "react";
import { createRoot } from "react-dom/client";
import { Api } from "./api";
import { Auth, loadConfig, type ConsoleConfig, type Person } from "./auth";
import { Admin } from "./Admin";
import { Worklist } from "./Worklist";
import { Loading } from "./ui";
import "./styles.css";

// The charting library is most of the console's weight: it loads with the first patient opened,
// so the worklist shows without it.
const PatientView = lazy(() => import("./Patient").then((m) => ({ default: m.PatientView })));

function useHash(): string {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const changed = () => setHash(window.location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return hash;
}

function Console({ config, auth, person }: { config: ConsoleConfig; auth: Auth; person: Person }) {
  const hash = useHash();
  const [expired, setExpired] = useState(false);
  const api = useMemo(() => new Api(config.apiUrl, () => person.idToken, () => setExpired(true)), [config.apiUrl, person.idToken]);
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const home = person.role === "admin" ? "admin" : "worklist";
  const page = parts[0] || home;

  // Each page names itself in the title, and focus moves to its heading, as a screen reader
  // user expects after navigation.
  useEffect(() => {
    document.title = `${page === "patients" ? `Patient ${parts[1] ?? ""}` : page === "admin" ? "Administration" : "Worklist"} · Vitalwire`;
    const heading = document.querySelector<HTMLElement>("main h1");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }, [hash]);

  let content;
  if (person.role !== "admin" && person.role !== "clinician") {
    content = <p className="failure" role="alert">The console is for clinicians and admins; this account's role is {person.role ?? "none"}.</p>;
  } else if (page === "patients" && parts[1]) {
    content = (
      <Suspense fallback={<Loading what="the patient view" />}>
        <PatientView key={parts[1]} api={api} person={person} patientId={parts[1]} />
      </Suspense>
    );
  } else if (page === "admin") {
    content = person.role === "admin" ? <Admin api={api} tab={parts[1] ?? "devices"} /> : <p className="failure" role="alert">Administration is for admins.</p>;
  } else {
    content = <Worklist api={api} person={person} />;
  }

  return (
    <>
      <a className="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Vitalwire</span>
        <nav aria-label="Main">
          <a href="#/worklist" aria-current={page === "worklist" ? "page" : undefined}>Worklist</a>
          {person.role === "admin" && (
            <a href="#/admin/devices" aria-current={page === "admin" ? "page" : undefined}>Administration</a>
          )}
        </nav>
        <span className="who">
          {person.name} ({person.role}){config.environment === "local" ? " · local platform" : ""}
        </span>
        <button type="button" onClick={() => auth.signOut()}>Sign out</button>
      </header>
      {expired && (
        <div className="failure" role="alert">
          Your session has ended. <button type="button" onClick={() => auth.signIn()}>Sign in again</button>
        </div>
      )}
      <main id="main" tabIndex={-1}>{content}</main>
    </>
  );
}

function SignIn({ auth, error }: { auth: Auth; error?: string }) {
  return (
    <main id="main" className="sign-in">
      <h1>Vitalwire console</h1>
      <p>The worklist of your patients' alerts, their vital-sign trends, and the platform's devices.</p>
      {error && <p className="failure" role="alert">{error}</p>}
      <button type="button" className="primary" onClick={() => auth.signIn()}>Sign in</button>
    </main>
  );
}

async function start() {
  const root = createRoot(document.getElementById("root")!);
  let config: ConsoleConfig;
  try {
    config = await loadConfig();
  } catch (e) {
    root.render(<p className="failure" role="alert">The console could not read its settings: {(e as Error).message}</p>);
    return;
  }
  const auth = new Auth(config);
  let error: string | undefined;
  try {
    await auth.completeSignIn();
  } catch (e) {
    error = (e as Error).message;
  }
  const person = await auth.person();
  root.render(<StrictMode>{person ? <Console config={config} auth={auth} person={person} /> : <SignIn auth={auth} error={error} />}</StrictMode>);
}

start();
