// oidc-provider ships no type declarations; this is the small surface Vigil uses.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface KoaContextWithOIDC {
    method: string;
    path: string;
    status: number;
    body: unknown;
    /** The caller's address (behind a trusted proxy, from X-Forwarded-For). */
    ip: string;
    req: IncomingMessage;
    res: ServerResponse;
    set(name: string, value: string): void;
    oidc: {
      route?: string;
      params?: Record<string, unknown>;
      client?: ClientLike;
      entities: Record<string, any>;
      provider: Provider;
      result?: { consent?: { grantId?: string } };
      session?: { grantIdFor(clientId: string | undefined): string | undefined };
    };
  }
  export interface ClientLike {
    clientId: string;
    [key: string]: unknown;
    grantTypeAllowed(type: string): boolean;
  }
  export type Middleware = (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>;

  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    issuer: string;
    proxy: boolean;
    /** How many X-Forwarded-For entries, from the right, `ip` considers (0: all, so the leftmost wins). */
    maxIpsCount: number;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    use(middleware: Middleware): void;
    on(event: string, listener: (...args: any[]) => void): void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<any>;
    interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options?: { mergeWithLastSubmission?: boolean }): Promise<void>;
    Grant: any;
    Client: any;
    AccessToken: any;
  }
  export const errors: Record<string, new (description?: string, detail?: string) => Error>;
  export default Provider;
}
