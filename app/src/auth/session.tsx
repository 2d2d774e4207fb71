import { ClientStorage, MedplumClient, MemoryStorage } from '@medplum/core';
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { CLIENT_ID, clearSession, loadSession, refreshSession, signIn, type Session } from './smart.ts';

export type Role = 'clinician' | 'patient';

export interface SessionContext {
  session: Session;
  medplum: MedplumClient;
  role: Role;
  /** The signed-in user's own record, e.g. `Practitioner/123`. */
  fhirUser: string;
  signOut(): void;
}

const Context = createContext<SessionContext | undefined>(undefined);

export function useSession(): SessionContext {
  const context = useContext(Context);
  if (!context) throw new Error('useSession outside a signed-in page');
  return context;
}

/** Refresh a minute before expiry, so requests never meet an expired token. */
const REFRESH_MARGIN_MS = 60_000;

/**
 * Holds the SMART session and one MedplumClient for it. The client gets only the access token:
 * refreshing is done here, once, so two refreshers never race over a rotating refresh token.
 */
export function SessionProvider({ children, fallback }: { children: (context: SessionContext) => ReactNode; fallback: ReactNode }): ReactNode {
  const [session, setSession] = useState<Session | undefined>(loadSession);
  const medplum = useMemo(() => new MedplumClient({
    baseUrl: `${window.location.origin}/`,
    fhirUrlPath: 'fhir/R4',
    clientId: CLIENT_ID,
    cacheTime: 5_000,
    storage: new ClientStorage(new MemoryStorage()),
    onUnauthenticated: () => {
      clearSession();
      setSession(undefined);
    },
  }), []);

  // set while rendering: children's effects (their first requests) run before this component's
  if (session && medplum.getAccessToken() !== session.accessToken) medplum.setAccessToken(session.accessToken);

  useEffect(() => {
    if (!session) return;
    const delay = Math.max(0, session.expiresAt - Date.now() - REFRESH_MARGIN_MS);
    const timer = setTimeout(() => {
      refreshSession(session).then(setSession, () => {
        clearSession();
        setSession(undefined);
      });
    }, delay);
    return () => clearTimeout(timer);
  }, [session, medplum]);

  const context = useMemo<SessionContext | undefined>(() => session && {
    session,
    medplum,
    fhirUser: session.fhirUser,
    role: session.fhirUser.startsWith('Patient/') ? 'patient' : 'clinician',
    signOut() {
      clearSession();
      medplum.clear();
      setSession(undefined);
    },
  }, [session, medplum]);

  if (!context) return fallback;
  return <Context.Provider value={context}>{children(context)}</Context.Provider>;
}

export { signIn };
