import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { Patient } from '@medplum/fhirtypes';
import type Provider from 'oidc-provider';
import type { SecurityEvent } from '../ops/security-audit.ts';
import type { Repository } from '../store/repository.ts';
import type { CareTeamPatients } from './care-team.ts';
import { resolveEhrLaunch } from './ehr-launch.ts';
import { PAGE_CSP } from './http-security.ts';
import { type LaunchContext, saveLaunchContext } from './launch-context.ts';
import { escapeHtml, OAUTH_PREFIX } from './provider.ts';
import type { UserStore } from './users.ts';

interface Details {
  uid: string;
  prompt: { name: string; details: { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> } };
  params: Record<string, string>;
  session?: { accountId?: string };
  grantId?: string;
}

/**
 * The end-user pages of the authorization code flow: sign-in, then consent with, for
 * `launch/patient`, the patient picker, or for `launch`, the EHR launch's context. Plain HTML forms
 * (fields `username`, `password`). `provider()` is the current one (it is rebuilt when keys rotate).
 */
export function interactionRouter(provider: () => Provider, users: UserStore, repo: Repository, careTeams: CareTeamPatients, record: (event: SecurityEvent) => void): Router {
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: '16kb' });
  const wrap = (handler: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) => {
    res.set('Cache-Control', 'no-store');
    handler(req, res).catch(next);
  };
  const base = `${OAUTH_PREFIX}/interaction`;
  /** Sign-in and consent, audited: the user name and app, never the password. */
  const audit = (req: Request, details: Details, subtype: 'login' | 'consent', username: string | undefined, failure?: string, scope?: string) => record({
    kind: 'oauth', subtype, action: 'E', failure, username: username?.slice(0, 200), clientId: details.params.client_id, address: req.ip,
    ...(scope ? { entity: [{ description: 'scope', detail: [{ type: 'scope', valueString: scope }] }] } : {}),
  });

  router.get(`${base}/:uid`, wrap(async (req, res) => {
    const details = (await provider().interactionDetails(req, res)) as Details;
    if (details.prompt.name === 'login') return void page(res, 200, 'Sign in', loginForm(details.uid));
    const user = await users.find(details.session?.accountId ?? '');
    page(res, 200, 'Authorize', await consentForm(details, user?.fhirUser, repo, careTeams));
  }));

  router.post(`${base}/:uid/login`, form, wrap(async (req, res) => {
    const details = (await provider().interactionDetails(req, res)) as Details;
    const { username, password } = (req.body ?? {}) as Record<string, string>;
    const user = typeof username === 'string' && typeof password === 'string' ? await users.authenticate(username, password) : undefined;
    audit(req, details, 'login', typeof username === 'string' ? username : undefined, user ? undefined : 'wrong username or password, or the account is locked');
    if (!user) return void page(res, 401, 'Sign in', loginForm(details.uid, 'Wrong username or password, or the account is locked.'));
    await provider().interactionFinished(req, res, { login: { accountId: user.username } }, { mergeWithLastSubmission: false });
  }));

  router.post(`${base}/:uid/confirm`, form, wrap(async (req, res) => {
    const details = (await provider().interactionDetails(req, res)) as Details;
    const accountId = details.session?.accountId;
    const user = accountId ? await users.find(accountId) : undefined;
    if (details.prompt.name !== 'consent' || !accountId || !user) throw new Error('no consent pending');
    const scopes = new Set((details.params.scope ?? '').split(' '));
    let context: LaunchContext | undefined;
    if (scopes.has('launch')) {
      context = await resolveEhrLaunch(repo.db, details.params.launch, accountId, details.params.client_id);
      if (!context) {
        const result = { error: 'invalid_request', error_description: 'The launch is unknown, expired, or not this user\'s' };
        audit(req, details, 'consent', accountId, 'unknown or expired launch');
        return void (await provider().interactionFinished(req, res, result, { mergeWithLastSubmission: false }));
      }
    } else if (scopes.has('launch/patient')) {
      if (user.fhirUser.startsWith('Patient/')) context = { patient: user.fhirUser.slice('Patient/'.length), need_patient_banner: true };
      else {
        const chosen = String((req.body as Record<string, string>)?.patient ?? '');
        const allowed = user.fhirUser.startsWith('Practitioner/') ? await careTeams.patientsOf(user.fhirUser) : [];
        if (!allowed.includes(chosen)) {
          return void page(res, 400, 'Authorize', await consentForm(details, user.fhirUser, repo, careTeams, 'Choose one of your patients.'));
        }
        context = { patient: chosen, need_patient_banner: true };
      }
    }
    const { Grant } = provider();
    const grant = details.grantId ? await Grant.find(details.grantId) : new Grant({ accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, list] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, list.join(' '));
    const grantId = (await grant.save()) as string;
    if (context) await saveLaunchContext(repo.db, grantId, context, 30 * 24 * 3600);
    audit(req, details, 'consent', accountId, undefined, details.params.scope);
    await provider().interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }));

  router.post(`${base}/:uid/abort`, form, wrap(async (req, res) => {
    const details = (await provider().interactionDetails(req, res)) as Details;
    audit(req, details, 'consent', details.session?.accountId, 'access_denied');
    await provider().interactionFinished(req, res, { error: 'access_denied', error_description: 'The user denied access' }, { mergeWithLastSubmission: false });
  }));
  return router;
}

function page(res: Response, status: number, title: string, body: string): void {
  res.status(status).type('html').set('Content-Security-Policy', PAGE_CSP).send(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
      `<title>${escapeHtml(title)} · Vigil</title></head><body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`,
  );
}

function loginForm(uid: string, error?: string): string {
  return (
    (error ? `<p role="alert">${escapeHtml(error)}</p>` : '') +
    `<form method="post" action="${OAUTH_PREFIX}/interaction/${encodeURIComponent(uid)}/login">` +
    `<p><label for="username">Username</label><br><input id="username" name="username" type="text" autocomplete="username" required autofocus></p>` +
    `<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password" required></p>` +
    `<p><button type="submit">Sign in</button></p></form>`
  );
}

async function consentForm(details: Details, fhirUser: string | undefined, repo: Repository, careTeams: CareTeamPatients, error?: string): Promise<string> {
  const scopes = (details.params.scope ?? '').split(' ').filter(Boolean);
  let picker = '';
  // an EHR launch brings its patient; a standalone launch/patient asks a practitioner for one
  if (scopes.includes('launch/patient') && !scopes.includes('launch') && fhirUser?.startsWith('Practitioner/')) {
    const ids = await careTeams.patientsOf(fhirUser);
    const options = await Promise.all(ids.map(async (id) => {
      const p = await repo.read<Patient>('Patient', id).catch(() => undefined);
      const name = p?.name?.[0] ? [...(p.name[0].given ?? []), p.name[0].family ?? ''].join(' ').trim() : id;
      return `<option value="${escapeHtml(id)}">${escapeHtml(name || id)}</option>`;
    }));
    picker = `<p><label for="patient">Patient</label><br><select id="patient" name="patient" required>${options.join('')}</select></p>`;
  }
  const uid = encodeURIComponent(details.uid);
  return (
    (error ? `<p role="alert">${escapeHtml(error)}</p>` : '') +
    `<p><strong>${escapeHtml(details.params.client_id ?? '')}</strong> asks for:</p><ul>${scopes.map((s) => `<li><code>${escapeHtml(s)}</code></li>`).join('')}</ul>` +
    `<form method="post" action="${OAUTH_PREFIX}/interaction/${uid}/confirm">${picker}<p><button type="submit">Allow</button></p></form>` +
    `<form method="post" action="${OAUTH_PREFIX}/interaction/${uid}/abort"><p><button type="submit">Deny</button></p></form>`
  );
}
