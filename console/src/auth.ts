// Sign-in: OAuth 2.0 authorization code with PKCE through oidc-client-ts, against Cognito's
// hosted UI on AWS and the local platform's stand-in for it (`/local-auth/oauth2/...`). The API
// takes the id token, whose audience is the app client the authorizer trusts.
import { User, UserManager, WebStorageStateStore } from "oidc-client-ts";

/** What `config.json` says about the deployment (written by the platform or the deploy script). */
export interface ConsoleConfig {
  apiUrl: string;
  environment: "local" | "aws";
  auth: {
    issuer: string;
    clientId: string;
    authorizationEndpoint: string;
    tokenEndpoint: string;
    endSessionEndpoint: string;
    scope: string;
  };
}

export type Role = "admin" | "clinician" | "patient";

/** The signed-in person, as their id token names them. */
export interface Person {
  subject: string;
  name: string;
  role: Role | null;
  idToken: string;
  expiresAt: number | null;
}

export async function loadConfig(): Promise<ConsoleConfig> {
  const answer = await fetch("config.json", { cache: "no-store" });
  if (!answer.ok) throw new Error(`config.json: ${answer.status} ${answer.statusText}`);
  return (await answer.json()) as ConsoleConfig;
}

/** The page the identity provider sends people back to: this one, without query or hash. */
function returnUrl(): string {
  const here = new URL(window.location.href);
  return `${here.origin}${here.pathname}`;
}

export class Auth {
  readonly manager: UserManager;

  constructor(private readonly config: ConsoleConfig) {
    const { auth } = config;
    this.manager = new UserManager({
      authority: auth.issuer,
      client_id: auth.clientId,
      redirect_uri: returnUrl(),
      post_logout_redirect_uri: returnUrl(),
      response_type: "code",
      scope: auth.scope,
      // The endpoints are given, so nothing is discovered: the local issuer has no discovery
      // document, and Cognito's hosted UI lives on another host than its issuer.
      metadata: {
        issuer: auth.issuer,
        authorization_endpoint: auth.authorizationEndpoint,
        token_endpoint: auth.tokenEndpoint,
        end_session_endpoint: auth.endSessionEndpoint,
      },
      // Tokens live as long as the tab: a shared ward computer keeps nothing after it closes.
      userStore: new WebStorageStateStore({ store: window.sessionStorage }),
      loadUserInfo: false,
      automaticSilentRenew: false,
    });
  }

  /** Finishes a sign-in when the identity provider has just sent the browser back. */
  async completeSignIn(): Promise<void> {
    const query = new URLSearchParams(window.location.search);
    if (!query.has("code") && !query.has("error")) return;
    if (query.has("error")) {
      const reason = query.get("error_description") ?? query.get("error");
      window.history.replaceState(null, "", returnUrl());
      throw new Error(`Sign-in was refused: ${reason}`);
    }
    const user = await this.manager.signinRedirectCallback();
    const back = (user.state as string | undefined) ?? "#/";
    window.history.replaceState(null, "", `${returnUrl()}${back}`);
  }

  async person(): Promise<Person | null> {
    const user = await this.manager.getUser();
    if (!user || user.expired || !user.id_token) return null;
    return toPerson(user);
  }

  signIn(): Promise<void> {
    return this.manager.signinRedirect({ state: window.location.hash || "#/" });
  }

  /** Forgets the tokens, then ends the session at the identity provider (Cognito's `/logout`). */
  async signOut(): Promise<void> {
    await this.manager.removeUser();
    const url = new URL(this.config.auth.endSessionEndpoint);
    url.searchParams.set("client_id", this.config.auth.clientId);
    url.searchParams.set("logout_uri", returnUrl());
    window.location.assign(url.toString());
  }
}

function toPerson(user: User): Person {
  const claims = user.profile as Record<string, unknown>;
  const groups = Array.isArray(claims["cognito:groups"]) ? (claims["cognito:groups"] as string[]) : [];
  const role = (["admin", "clinician", "patient"] as Role[]).find((r) => groups.includes(r)) ?? null;
  const name = (claims["name"] as string) ?? (claims["cognito:username"] as string) ?? user.profile.sub;
  return { subject: user.profile.sub, name, role, idToken: user.id_token ?? "", expiresAt: user.expires_at ?? null };
}
