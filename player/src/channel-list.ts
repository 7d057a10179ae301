/**
 * The watch page's channel list: a menu of the origin's live channels and recordings
 * (GET /api/channels), refreshed every 10 s, that opens another channel; and a notice when the
 * broadcast being watched has ended (the player reached EXT-X-ENDLIST).
 */

interface ChannelSummary {
  channel: string;
  state: 'idle' | 'live' | 'reconnecting' | 'ended';
  live: boolean;
  vod: boolean;
}

export function channelLabel(c: ChannelSummary): string {
  if (c.state === 'reconnecting') return `● ${c.channel} (reconnecting)`;
  if (c.live) return `● ${c.channel}`;
  if (c.vod) return `${c.channel} (recording)`;
  return `${c.channel} (offline)`;
}

/** Live channels first, then recordings; offline channels only if current. */
export function listedChannels(list: ChannelSummary[], current: string): ChannelSummary[] {
  const rank = (c: ChannelSummary) => (c.live ? 0 : c.vod ? 1 : 2);
  return list.filter((c) => c.live || c.vod || c.channel === current).sort((a, b) => rank(a) - rank(b) || a.channel.localeCompare(b.channel));
}

export function mountChannelList(current: string, opts: { video?: HTMLVideoElement | null; refreshMs?: number } = {}): void {
  const header = document.querySelector('header.top');
  if (!header) return;
  const label = document.createElement('label');
  label.className = 'channel-list';
  label.style.cssText = 'display:flex;gap:0.4rem;align-items:center;color:var(--muted)';
  label.textContent = 'channels';
  const select = document.createElement('select');
  select.id = 'channel-list';
  select.style.cssText = 'font:inherit;background:var(--panel);color:var(--text);border:1px solid var(--line);border-radius:6px;padding:0.15rem 0.4rem';
  select.addEventListener('change', () => {
    if (select.value && select.value !== current) location.href = `./watch.html?channel=${encodeURIComponent(select.value)}`;
  });
  label.append(select);
  header.insertBefore(label, header.querySelector('nav'));

  const refresh = async () => {
    try {
      const res = await fetch('/api/channels', { cache: 'no-store' });
      if (!res.ok) return;
      const list = listedChannels((await res.json()) as ChannelSummary[], current);
      select.replaceChildren(...list.map((c) => {
        const o = document.createElement('option');
        o.value = c.channel;
        o.textContent = channelLabel(c);
        o.selected = c.channel === current;
        return o;
      }));
    } catch {
      // the list is a convenience; the player works without it
    }
  };
  void refresh();
  setInterval(() => void refresh(), opts.refreshMs ?? 10_000);

  const video = opts.video ?? document.querySelector('video');
  video?.addEventListener('ended', () => {
    const p = document.createElement('p');
    p.className = 'status';
    p.id = 'broadcast-ended';
    p.textContent = 'The broadcast has ended. It stays available as a recording: press play to watch it again.';
    video.parentElement?.append(p);
  }, { once: true });
}
