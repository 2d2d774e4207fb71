import { Center, Stack } from '@mantine/core';
import { useEffect, useState } from 'react';
import { fhirBaseUrl, signIn } from '../auth/smart.ts';
import { ErrorState, Loading } from '../components/LoadState.tsx';

/**
 * EHR launch: `/launch?iss=…&launch=…`. Only this server's own FHIR base is accepted as `iss`, so a
 * crafted link cannot send the user's sign-in to someone else's server.
 */
export function LaunchPage() {
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    const params = new URLSearchParams(window.location.search);
    const iss = params.get('iss')?.replace(/\/+$/, '');
    const launch = params.get('launch') ?? undefined;
    if (iss !== fhirBaseUrl()) {
      setError(new Error(`This app only launches against ${fhirBaseUrl()}, not ${iss ?? 'an unnamed server'}.`));
      return;
    }
    signIn({ launch, returnTo: '/' }).catch(setError);
  }, []);
  if (error === undefined) return <Loading label="Launching…" />;
  return <Center mih="100vh" p="md"><Stack maw={480}><ErrorState error={error} /></Stack></Center>;
}
