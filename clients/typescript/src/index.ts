/**
 * A thin, typed client of the Arrive ETA service.
 *
 * The types come from `schema.ts`, generated from the service's `/openapi.json` by
 * openapi-typescript (`./dev gen-clients`), so they follow the server's msgspec types.
 * Every non-2xx answer throws an {@link ArriveError} carrying the server's error body.
 */
import type { components } from "./schema.js";

export type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
export type EtaRequest = Schemas["EtaRequest"];
export type EtaAnswer = Schemas["EtaAnswer"];
export type BatchAnswer = Schemas["BatchAnswer"];
export type ErrorBody = Schemas["ErrorBody"];
export type Health = Schemas["Health"];
export type Readiness = Schemas["Readiness"];

export interface ClientOptions {
  /** Per-request timeout in milliseconds (default 2000). */
  timeoutMs?: number;
  /** Headers sent with every request (e.g. `Authorization`). */
  headers?: Record<string, string>;
  /** The fetch implementation (default: the global `fetch` of Node >= 18). */
  fetch?: typeof fetch;
}

/** A refused or failed request: the HTTP status and, when the server sent one, its error body. */
export class ArriveError extends Error {
  readonly status: number;
  readonly body: ErrorBody | undefined;

  constructor(status: number, body: ErrorBody | undefined, text: string) {
    super(body ? `${status} ${body.error}: ${body.message}` : `${status}: ${text.slice(0, 200)}`);
    this.name = "ArriveError";
    this.status = status;
    this.body = body;
  }

  /** The offending field, e.g. `orders[3].pickup_lat` (422 and some 400s). */
  get field(): string | null | undefined {
    return this.body?.field;
  }
}

export class ArriveClient {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;
  private readonly fetchImpl: typeof fetch;

  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.headers = options.headers ?? {};
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  /** The ETA of one order (`POST /v1/eta`). */
  predict(order: EtaRequest): Promise<EtaAnswer> {
    return this.call<EtaAnswer>("POST", "/v1/eta", order);
  }

  /** The ETAs of several orders, in order (`POST /v1/eta/batch`, at most the server's `max_batch`). */
  async predictBatch(orders: EtaRequest[]): Promise<EtaAnswer[]> {
    const answer = await this.call<BatchAnswer>("POST", "/v1/eta/batch", { orders });
    return answer.answers;
  }

  /** Liveness and the state of the model and the feature store (`GET /healthz`). */
  health(): Promise<Health> {
    return this.call<Health>("GET", "/healthz");
  }

  /** Readiness (`GET /readyz`): a not-ready replica's 503 is returned, not thrown. */
  ready(): Promise<Readiness> {
    return this.call<Readiness>("GET", "/readyz", undefined, [200, 503]);
  }

  private async call<T>(
    method: string,
    path: string,
    body?: unknown,
    expected: readonly number[] = [200],
  ): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json", ...this.headers };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await this.fetchImpl(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await response.text();
    const parsed = parseJson(text);
    if (!expected.includes(response.status)) {
      throw new ArriveError(response.status, isErrorBody(parsed) ? parsed : undefined, text);
    }
    if (parsed === undefined) {
      throw new ArriveError(response.status, undefined, `not JSON: ${text}`);
    }
    return parsed as T;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isErrorBody(value: unknown): value is ErrorBody {
  return typeof value === "object" && value !== null && "error" in value && "message" in value;
}
