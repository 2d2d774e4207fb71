import { MantineProvider } from '@mantine/core';
import { Notifications } from '@mantine/notifications';
import { MedplumProvider } from '@medplum/react';
import { lazy, Suspense } from 'react';
import { BrowserRouter, Route, Routes, useLocation, useNavigate } from 'react-router';
import { SessionProvider, type SessionContext } from './auth/session.tsx';
import { AppLayout } from './components/AppLayout.tsx';
import { ErrorBoundary } from './components/ErrorBoundary.tsx';
import { Loading } from './components/LoadState.tsx';
import { CallbackPage } from './pages/CallbackPage.tsx';
import { LaunchPage } from './pages/LaunchPage.tsx';
import { NotFoundPage } from './pages/NotFoundPage.tsx';
import { SignInPage } from './pages/SignInPage.tsx';
import { cssVariables, theme } from './theme.ts';

// each screen is its own chunk: a patient never downloads the clinician's dashboard
const PanelPage = lazy(() => import('./clinician/PanelPage.tsx'));
const AlertsPage = lazy(() => import('./clinician/AlertsPage.tsx'));
const ChartPage = lazy(() => import('./clinician/ChartPage.tsx'));
const PlanPage = lazy(() => import('./clinician/PlanPage.tsx'));
const RulesPage = lazy(() => import('./clinician/RulesPage.tsx'));
const PortalPage = lazy(() => import('./patient/PortalPage.tsx'));

export function App() {
  return (
    <MantineProvider theme={theme} cssVariablesResolver={cssVariables} defaultColorScheme="auto">
      <Notifications position="top-right" />
      <BrowserRouter>
        <Routes>
          <Route path="/callback" element={<CallbackPage />} />
          <Route path="/launch" element={<LaunchPage />} />
          <Route path="*" element={<SessionProvider fallback={<SignInPage />}>{(context) => <SignedIn context={context} />}</SessionProvider>} />
        </Routes>
      </BrowserRouter>
    </MantineProvider>
  );
}

function SignedIn({ context }: { context: SessionContext }) {
  const navigate = useNavigate();
  const location = useLocation();
  const routes = context.role === 'clinician' ? (
    <Routes>
      <Route path="/" element={<PanelPage />} />
      <Route path="/alerts" element={<AlertsPage />} />
      <Route path="/patients/:id" element={<ChartPage />} />
      <Route path="/patients/:id/plan" element={<PlanPage />} />
      <Route path="/rules" element={<RulesPage />} />
      <Route path="*" element={<NotFoundPage />} />
    </Routes>
  ) : (
    <Routes>
      <Route path="/" element={<PortalPage />} />
      <Route path="/patients/:id" element={<PortalPage />} />
      <Route path="*" element={<NotFoundPage />} />
    </Routes>
  );
  return (
    <MedplumProvider medplum={context.medplum} navigate={(path) => void navigate(path)}>
      <AppLayout>
        <ErrorBoundary key={location.pathname}>
          <Suspense fallback={<Loading />}>{routes}</Suspense>
        </ErrorBoundary>
      </AppLayout>
    </MedplumProvider>
  );
}
