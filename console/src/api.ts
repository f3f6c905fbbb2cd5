// The platform's public HTTP API, as the console uses it. Every call carries the person's id
// token; every refusal becomes an ApiError with the platform's own reason, shown as it is.

/** A refusal or failure, with what the platform said. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The reason in any of the platform's error shapes: `{error: {message}}`, an
 * OperationOutcome, Polaris's `{message}` or problem JSON, or OAuth's `error_description`. */
function reason(status: number, body: unknown): { message: string; field?: string } {
  const b = body as Record<string, any> | null;
  if (b?.error?.message) return { message: b.error.message, field: b.error.field };
  if (b?.resourceType === "OperationOutcome") {
    const issue = b.issue?.[0];
    return { message: issue?.diagnostics ?? issue?.details?.text ?? issue?.code ?? `HTTP ${status}` };
  }
  if (typeof b?.error === "string") return { message: b.error, field: b.field };
  if (b?.detail) return { message: b.detail };
  if (b?.message) return { message: b.message };
  return { message: `HTTP ${status}` };
}

export type Json = Record<string, any>;

export class Api {
  constructor(
    private readonly base: string,
    private readonly token: () => string,
    private readonly onUnauthenticated: () => void,
  ) {}

  async call<T = Json>(method: string, path: string, body?: unknown): Promise<T> {
    const url = path.startsWith("http") ? path : `${this.base}${path}`;
    let answer: Response;
    try {
      answer = await fetch(url, {
        method,
        headers: {
          Authorization: `Bearer ${this.token()}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          Accept: "application/json, application/fhir+json",
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, `The platform could not be reached (${(e as Error).message})`);
    }
    const text = await answer.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (answer.status === 401) this.onUnauthenticated();
    if (!answer.ok) {
      const { message, field } = reason(answer.status, parsed);
      throw new ApiError(answer.status, message, field);
    }
    return parsed as T;
  }

  get<T = Json>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }
  post<T = Json>(path: string, body?: unknown): Promise<T> {
    return this.call<T>("POST", path, body ?? {});
  }
  put<T = Json>(path: string, body: unknown): Promise<T> {
    return this.call<T>("PUT", path, body);
  }
  patch<T = Json>(path: string, body: unknown): Promise<T> {
    return this.call<T>("PATCH", path, body);
  }
  delete<T = Json>(path: string): Promise<T> {
    return this.call<T>("DELETE", path);
  }

  /** Every page of a FHIR search, following `next` links, up to `max` resources. */
  async searchAll(path: string, max: number): Promise<Json[]> {
    const resources: Json[] = [];
    let url: string | undefined = path;
    while (url && resources.length < max) {
      const bundle: Json = await this.get(url);
      for (const entry of bundle.entry ?? []) resources.push(entry.resource);
      url = bundle.link?.find((l: Json) => l.relation === "next")?.url;
    }
    return resources.slice(0, max);
  }
}

/** `encodeURIComponent` for a path segment. */
export const seg = encodeURIComponent;
