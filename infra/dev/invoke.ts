import { ulid } from "ulid";
import { HEADERS, signDelivery } from "../../functions/sdk/contract.ts";
import { devPorts, FUNCTION_NAMES, type FunctionName, localUrl } from "./ports.ts";

/** An event file that cannot be sent (not JSON, or no subject anywhere). */
export class EventFileError extends Error {
  override name = "EventFileError";
}

export interface InvocationOptions {
  /** Default: the function's dev URL + /events. */
  url?: string | undefined;
  /** Overrides the file's `subject`. */
  subject?: string | undefined;
  /** Undefined → unsigned (for a function running without JETWAY_SECRET). */
  secret?: string | undefined;
  id?: string | undefined;
  portBase?: number | undefined;
}

export interface Invocation {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** `{ subject, data }` → both; any other JSON value is the event's data as is. */
export function readEventFile(text: string, source: string): { subject: string | undefined; data: unknown } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new EventFileError(`${source} is not JSON: ${(cause as Error).message}`, { cause });
  }
  if (parsed && typeof parsed === "object" && !Array.isArray(parsed) && "data" in parsed) {
    const { subject, data } = parsed as { subject?: unknown; data: unknown };
    if (subject === undefined || typeof subject === "string") return { subject, data };
  }
  return { subject: undefined, data: parsed };
}

export function defaultUrl(fn: string, portBase?: number): string | undefined {
  if (!(FUNCTION_NAMES as readonly string[]).includes(fn)) return undefined;
  return localUrl(devPorts(portBase).functions[fn as FunctionName], "/events");
}

/** The request the bridge would send for this event: a binary-mode CloudEvent, signed when a secret is given. */
export async function buildInvocation(
  fn: string,
  file: { subject: string | undefined; data: unknown },
  options: InvocationOptions,
): Promise<Invocation> {
  const subject = options.subject ?? file.subject;
  if (!subject) throw new EventFileError("no subject: pass --subject or write the file as { subject, data }");
  const url = options.url ?? defaultUrl(fn, options.portBase);
  if (!url)
    throw new EventFileError(`unknown function "${fn}": pass --url (known: ${FUNCTION_NAMES.join(", ")})`);
  const body = JSON.stringify(file.data);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    [HEADERS.ceSpecVersion]: "1.0",
    [HEADERS.ceId]: options.id ?? `invoke-${ulid()}`,
    [HEADERS.ceType]: subject,
    [HEADERS.ceSource]: "jetway-invoke",
    [HEADERS.ceTime]: new Date().toISOString(),
    [HEADERS.route]: "invoke",
    [HEADERS.stream]: "INVOKE",
    [HEADERS.seq]: "0",
    [HEADERS.delivery]: "1",
  };
  if (options.secret) {
    const identity = { id: headers[HEADERS.ceId] as string, type: subject };
    headers[HEADERS.signature] = await signDelivery(options.secret, identity, body);
  }
  return { url, headers, body };
}

export interface InvokeResult {
  status: number;
  retryAfter: string | null;
  body: unknown;
}

export async function send(invocation: Invocation, timeoutMs = 30_000): Promise<InvokeResult> {
  let res: Response;
  try {
    res = await fetch(invocation.url, {
      method: "POST",
      headers: invocation.headers,
      body: invocation.body,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    // fetch says only "fetch failed"; the cause (ECONNREFUSED, timeout…) is what a person needs.
    const cause = (error as Error).cause as { code?: string; message?: string } | undefined;
    const why = cause?.code ?? cause?.message ?? (error as Error).message;
    throw new Error(`cannot reach ${invocation.url} (${why}): is the function running? (npm run dev)`, {
      cause: error,
    });
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: show the text as it came.
  }
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body };
}
