/**
 * NAT lab: real NAT gateways made of network namespaces and iptables, for test/net/nat.test.ts.
 *
 * Runs inside test/netns.sh's private namespace (root there). That namespace is the "public
 * host": a bridge `nlbr0` with PUBLIC_IP (and a second address, ALT_IP, for RFC 5780 checks)
 * holds the tracker, the STUN servers, coturn and the origin, all running in the test process.
 * Every site is two namespaces created with `ip netns add` (names unique per run):
 *
 *   [host 10.0.i.2/24, eth0, default via 10.0.i.1] --- [lan 10.0.i.1 | gateway | wan 198.51.100.(10+i)] --- nlbr0
 *
 * Gateway kinds (iptables on the gateway; DESIGN.md §9):
 * - 'full-cone':       MASQUERADE (endpoint-independent mapping, source port kept) plus a DNAT
 *                      of every unsolicited UDP packet on the WAN to the host, same port
 *                      (endpoint-independent filtering: a "full cone").
 * - 'port-restricted': MASQUERADE, unsolicited packets on the WAN dropped in INPUT
 *                      (endpoint-independent mapping, address-and-port-dependent filtering).
 * - 'symmetric':       MASQUERADE --random-fully (address-and-port-dependent mapping) + the same
 *                      INPUT drop.
 * - 'open':            no NAT: the host sits on the public bridge itself.
 *
 * Unroutable traffic (other sites' private addresses, the outer namespace's 10.77.0.0/24) is
 * routed into a sink (see blackhole()), i.e. dropped silently (an ICMP error would break coturn's
 * relaying; a missing default route would make Chromium gather nothing). No interface name
 * starts with `veth` (werift ignores those). Everything is removed by `destroy()`.
 */
import { execFileSync } from 'node:child_process';

export type NatKind = 'open' | 'full-cone' | 'port-restricted' | 'symmetric';

export const PUBLIC_IP = '198.51.100.1';
export const ALT_IP = '198.51.100.2';
const BRIDGE = 'nlbr0';
const BLACKHOLE = 'nlbh0';

export interface Site {
  name: string;
  kind: NatKind;
  /** Namespace the peer runs in (`ip netns exec hostNs ...`). */
  hostNs: string;
  /** The gateway's namespace (null for 'open'). */
  gatewayNs: string | null;
  /** The host's own address. */
  hostIp: string;
  /** The address the public side sees (the gateway's WAN address, or hostIp when open). */
  publicIp: string;
}

export interface Lab {
  prefix: string;
  sites: Site[];
  destroy(): void;
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

const ip = (...args: string[]) => run('ip', args);
const nsIp = (ns: string, ...args: string[]) => run('ip', ['-n', ns, ...args]);
const nsRun = (ns: string, cmd: string, ...args: string[]) => run('ip', ['netns', 'exec', ns, cmd, ...args]);

/**
 * Routes `dest` into a silent sink: a veth pair (`name` / `name`+'x', no address) and a
 * permanent neighbor entry with a MAC nobody has, so packets leave without ARP, ICMP or an
 * error and are discarded by the other end (no `dummy` module on this kernel).
 */
function blackhole(ipIn: (...args: string[]) => string, name: string, dest: string): void {
  ipIn('link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}x`);
  ipIn('link', 'set', name, 'up');
  ipIn('link', 'set', `${name}x`, 'up');
  ipIn('neigh', 'add', '169.254.255.254', 'lladdr', '02:00:5e:00:53:fe', 'dev', name, 'nud', 'permanent');
  ipIn('route', 'add', dest, 'via', '169.254.255.254', 'dev', name, 'onlink');
}

/** Why the lab cannot run here, or null when it can (root, ip, iptables, namespaces). */
export function labUnavailableReason(): string | null {
  if (process.env.STARLING_IN_NETNS !== '1') return 'not inside test/netns.sh (run: bash test/netns.sh npx vitest run test/net/nat.test.ts)';
  if (process.getuid?.() !== 0) return 'needs root inside the namespace';
  for (const [cmd, args] of [['ip', ['-V']], ['iptables', ['--version']]] as const) {
    try {
      run(cmd, [...args]);
    } catch {
      return `${cmd} is not installed (Debian: ${cmd === 'ip' ? 'iproute2' : 'iptables'})`;
    }
  }
  const probe = `stl-probe-${process.pid}`;
  try {
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
  } catch (err) {
    return `ip netns add is forbidden here: ${(err as Error).message}`;
  }
  return null;
}

/** Builds the public bridge and one site per entry of `kinds`. Cleans up after itself on failure. */
export function createLab(kinds: { name: string; kind: NatKind }[]): Lab {
  const prefix = `stl${process.pid}`;
  const namespaces: string[] = [];
  const outerLinks: string[] = [];
  const destroy = () => {
    for (const ns of namespaces.splice(0).reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* already gone */
      }
    }
    for (const l of outerLinks.splice(0).reverse()) {
      try {
        ip('link', 'del', l);
      } catch {
        /* gone with its peer */
      }
    }
  };
  try {
    // The public segment: a bridge in the outer namespace, which is the public host.
    ip('link', 'add', BRIDGE, 'type', 'bridge');
    outerLinks.push(BRIDGE);
    ip('addr', 'add', `${PUBLIC_IP}/24`, 'dev', BRIDGE);
    ip('addr', 'add', `${ALT_IP}/24`, 'dev', BRIDGE);
    ip('link', 'set', BRIDGE, 'up');
    blackhole(ip, BLACKHOLE, '10.0.0.0/16');
    outerLinks.push(BLACKHOLE);

    const sites: Site[] = [];
    kinds.forEach(({ name, kind }, i) => {
      const n = i + 1;
      const hostNs = `${prefix}-${name}-h`;
      const wanIp = `198.51.100.${10 + n}`;
      ip('netns', 'add', hostNs);
      namespaces.push(hostNs);
      nsIp(hostNs, 'link', 'set', 'lo', 'up');
      const brPort = `nl${n}br`;
      if (kind === 'open') {
        ip('link', 'add', brPort, 'type', 'veth', 'peer', 'name', `nl${n}h`);
        outerLinks.push(brPort);
        ip('link', 'set', brPort, 'master', BRIDGE, 'up');
        ip('link', 'set', `nl${n}h`, 'netns', hostNs, 'name', 'eth0');
        nsIp(hostNs, 'addr', 'add', `${wanIp}/24`, 'dev', 'eth0');
        nsIp(hostNs, 'link', 'set', 'eth0', 'up');
        blackhole((...a) => nsIp(hostNs, ...a), 'bh0', 'default');
        sites.push({ name, kind, hostNs, gatewayNs: null, hostIp: wanIp, publicIp: wanIp });
        return;
      }
      const gwNs = `${prefix}-${name}-g`;
      ip('netns', 'add', gwNs);
      namespaces.push(gwNs);
      nsIp(gwNs, 'link', 'set', 'lo', 'up');
      // WAN: gateway <-> bridge
      ip('link', 'add', brPort, 'type', 'veth', 'peer', 'name', `nl${n}w`);
      outerLinks.push(brPort);
      ip('link', 'set', brPort, 'master', BRIDGE, 'up');
      ip('link', 'set', `nl${n}w`, 'netns', gwNs, 'name', 'wan');
      nsIp(gwNs, 'addr', 'add', `${wanIp}/24`, 'dev', 'wan');
      nsIp(gwNs, 'link', 'set', 'wan', 'up');
      // LAN: gateway <-> host
      const lanNet = `10.0.${n}`;
      nsIp(gwNs, 'link', 'add', 'lan', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hostNs);
      nsIp(gwNs, 'addr', 'add', `${lanNet}.1/24`, 'dev', 'lan');
      nsIp(gwNs, 'link', 'set', 'lan', 'up');
      nsIp(hostNs, 'addr', 'add', `${lanNet}.2/24`, 'dev', 'eth0');
      nsIp(hostNs, 'link', 'set', 'eth0', 'up');
      nsIp(hostNs, 'route', 'add', 'default', 'via', `${lanNet}.1`);
      // Anything the gateway cannot route vanishes silently.
      blackhole((...a) => nsIp(gwNs, ...a), 'bh0', 'default');
      nsRun(gwNs, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
      const ipt = (...args: string[]) => nsRun(gwNs, 'iptables', ...args);
      ipt('-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE', ...(kind === 'symmetric' ? ['--random-fully'] : []));
      if (kind === 'full-cone') {
        // Endpoint-independent filtering: whatever arrives unsolicited goes to the host, same port.
        ipt('-t', 'nat', '-A', 'PREROUTING', '-i', 'wan', '-p', 'udp', '-j', 'DNAT', '--to-destination', `${lanNet}.2`);
      }
      // Unsolicited packets must not create conntrack entries on the gateway itself (they would
      // steal the mapping of the host's next outgoing flow): drop them before they are confirmed.
      ipt('-A', 'INPUT', '-i', 'wan', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT');
      ipt('-A', 'INPUT', '-i', 'wan', '-j', 'DROP');
      sites.push({ name, kind, hostNs, gatewayNs: gwNs, hostIp: `${lanNet}.2`, publicIp: wanIp });
    });
    return { prefix, sites, destroy };
  } catch (err) {
    destroy();
    throw err;
  }
}

/** Conntrack-free view of a gateway's NAT rules (for failure messages). */
export function describeGateway(site: Site): string {
  if (!site.gatewayNs) return `${site.name}: open`;
  return nsRun(site.gatewayNs, 'iptables-save');
}

/**
 * A network change: the site's gateway gets a new public address (the old one is removed, which
 * also flushes its MASQUERADE mappings), as when a phone moves to another network. Returns the
 * new address. promote_secondaries is switched on first: without it (the default in a fresh
 * namespace) removing the old, primary, address of the /24 removes the new, secondary, one with
 * it, and the site is left with no public address at all (what the first version of this function
 * did: the "moved" site was simply offline).
 */
export function renumberSite(site: Site, newPublicIp: string): string {
  if (!site.gatewayNs) throw new Error('only NATed sites can be renumbered');
  nsRun(site.gatewayNs, 'sysctl', '-q', '-w', 'net.ipv4.conf.wan.promote_secondaries=1');
  nsIp(site.gatewayNs, 'addr', 'add', `${newPublicIp}/24`, 'dev', 'wan');
  nsIp(site.gatewayNs, 'addr', 'del', `${site.publicIp}/24`, 'dev', 'wan');
  site.publicIp = newPublicIp;
  return newPublicIp;
}
