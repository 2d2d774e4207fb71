import { lookup } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { badRequest } from '../fhir/outcome.ts';

/** Addresses a notification must never reach unless private endpoints are allowed (SSRF). */
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 3],
] as const) PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) PRIVATE.addSubnet(net, bits, 'ipv6');

function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return PRIVATE.check(mapped, 'ipv4');
  const family = isIP(address);
  return family !== 0 && PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Create-time check of `channel.endpoint`: an http(s) URL whose host is not loopback or private. */
export function checkEndpoint(endpoint: string | undefined, allowPrivate: boolean): URL {
  const at = 'Subscription.channel.endpoint';
  if (!endpoint) throw badRequest('A rest-hook subscription needs channel.endpoint', at);
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw badRequest(`channel.endpoint "${endpoint}" is not a URL`, at);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badRequest(`channel.endpoint must be http or https, not ${url.protocol}`, at);
  if (url.username || url.password) throw badRequest('channel.endpoint must not carry credentials; use channel.header', at);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivate && (host === 'localhost' || host.endsWith('.localhost') || isPrivateAddress(host))) {
    throw badRequest(`channel.endpoint ${url.host} is a loopback or private address`, at);
  }
  return url;
}

/**
 * The address lookup of delivery connections: refuses a name that resolves to a loopback or private
 * address. Checked as the connection is made, on the addresses it will use, so a name cannot
 * resolve to a public address for a check and to a private one for the connection.
 */
export const publicLookup: LookupFunction = (hostname, options, callback) => {
  lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, '', 0);
    const blocked = addresses.find((a) => isPrivateAddress(a.address));
    if (blocked) return callback(new Error(`${hostname} resolves to the private address ${blocked.address}`), '', 0);
    if (options.all) return callback(null, addresses);
    callback(null, addresses[0].address, addresses[0].family);
  });
};
