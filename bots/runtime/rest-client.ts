import type { Bundle, Observation, OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { FhirClient, SearchParams } from './manifest.ts';

/** A FHIR server's refusal: its HTTP status and what its OperationOutcome says. */
export class FhirRequestError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'FhirRequestError';
    this.status = status;
  }
}

export interface RestClientOptions {
  /** The server's FHIR base, e.g. `http://hapi:8080/fhir`. */
  baseUrl: string;
  /** The `Authorization` header's value for each request, if the server asks for one. */
  authorization?: () => Promise<string | undefined>;
  /** Per request (default 30 s): a server that stops answering fails the run rather than holding it. */
  timeoutMs?: number;
}

/**
 * The bots' FHIR client on any FHIR R4 server, over its REST API: how bots run against an external
 * store. Only what every server offers is used: `$lastn` (which HAPI offers only with Elasticsearch)
 * is one search per code, newest first.
 */
export function restClient({ baseUrl, authorization, timeoutMs = 30_000 }: RestClientOptions): FhirClient {
  const base = baseUrl.replace(/\/+$/, '');

  async function call(method: string, url: string, body?: Resource, headers: Record<string, string> = {}): Promise<{ status: number; resource?: Resource; location?: string }> {
    const auth = await authorization?.();
    const res = await fetch(url, {
      method,
      headers: {
        accept: 'application/fhir+json',
        ...(body ? { 'content-type': 'application/fhir+json', prefer: 'return=representation' } : {}),
        ...(auth ? { authorization: auth } : {}),
        ...headers,
      },
      body: body && JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    const resource = parsed(text);
    if (!res.ok) throw new FhirRequestError(res.status, `${method} ${url.slice(base.length)}: ${res.status} ${diagnostics(resource) ?? res.statusText}`);
    if (text && !resource) throw new FhirRequestError(502, `${method} ${url.slice(base.length)}: the answer is not FHIR JSON`);
    return { status: res.status, resource, location: res.headers.get('location') ?? undefined };
  }

  /** The written resource: the body, or (a server answering `return=minimal` whatever is asked) what its Location names. */
  async function written<T extends Resource>(answer: { resource?: Resource; location?: string }): Promise<T> {
    if (answer.resource?.resourceType && answer.resource.resourceType !== 'OperationOutcome') return answer.resource as T;
    if (!answer.location) throw new Error('the server answered a write with neither the resource nor its Location');
    const [type, id] = new URL(answer.location, `${base}/`).pathname.slice(new URL(`${base}/`).pathname.length).split('/');
    return (await call('GET', `${base}/${type}/${id}`)).resource as T;
  }

  async function* pages<T extends Resource>(type: string, params: SearchParams): AsyncIterable<T[]> {
    let url: string | undefined = `${base}/${type}?${query(params)}`;
    while (url) {
      const bundle = (await call('GET', url)).resource as Bundle<T>;
      yield (bundle.entry ?? []).filter((e) => (e.search?.mode ?? 'match') === 'match' && e.resource).map((e) => e.resource as T);
      url = bundle.link?.find((l) => l.relation === 'next')?.url;
    }
  }

  const client: FhirClient = {
    read: async <T extends Resource>(type: T['resourceType'], id: string) => (await call('GET', `${base}/${type}/${encodeURIComponent(id)}`)).resource as T,
    vread: async <T extends Resource>(type: T['resourceType'], id: string, versionId: string) =>
      (await call('GET', `${base}/${type}/${encodeURIComponent(id)}/_history/${encodeURIComponent(versionId)}`)).resource as T,
    async search<T extends Resource>(type: T['resourceType'], params: SearchParams): Promise<T[]> {
      for await (const page of pages<T>(type, params)) return page;
      return [];
    },
    searchPages: (type, params) => pages(type, params),
    async lastn(params: SearchParams): Promise<Observation[]> {
      const { code, max = '1', ...rest } = params;
      const codes = [code ?? []].flat().flatMap((c) => c.split(','));
      const perCode = await Promise.all(codes.map((c) => client.search<Observation>('Observation', { ...rest, code: c, _sort: '-date', _count: String(max) })));
      // an Observation coded twice is found twice
      return [...new Map(perCode.flat().map((o) => [o.id, o])).values()];
    },
    create: async <T extends Resource>(resource: T) => written<T>(await call('POST', `${base}/${resource.resourceType}`, resource)),
    async update<T extends Resource>(resource: T, options: { ifMatch?: string } = {}): Promise<T> {
      const headers: Record<string, string> = options.ifMatch ? { 'if-match': `W/"${options.ifMatch}"` } : {};
      return written<T>(await call('PUT', `${base}/${resource.resourceType}/${encodeURIComponent(resource.id as string)}`, resource, headers));
    },
    async createIfNoneExist<T extends Resource>(resource: T, criteria: string) {
      const answer = await call('POST', `${base}/${resource.resourceType}`, resource, { 'if-none-exist': criteria });
      return { resource: await written<T>(answer), created: answer.status === 201 };
    },
  };
  return client;
}

function query(params: SearchParams): string {
  const q = new URLSearchParams();
  for (const [name, values] of Object.entries(params)) for (const v of [values].flat()) q.append(name, v);
  return q.toString();
}

function parsed(text: string): Resource | undefined {
  try {
    const value = text ? (JSON.parse(text) as Resource) : undefined;
    return typeof value?.resourceType === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

function diagnostics(resource: Resource | undefined): string | undefined {
  if (resource?.resourceType !== 'OperationOutcome') return undefined;
  return (resource as OperationOutcome).issue?.map((i) => i.diagnostics ?? i.details?.text ?? i.code).join('; ');
}
