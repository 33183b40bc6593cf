// What every script that starts Debian's Chromium shares: where it is, the
// switches DEVELOPERS.md asks for (no background networking, no name
// resolution but loopback, local addresses shown rather than hidden behind
// mDNS, loopback allowed in peer connections), and playwright-core, which
// never downloads a browser. Playwright adds --headless and the user data
// directory itself (launchPersistentContext), and its own --disable-features
// comes first: this one still takes effect. Run these scripts only inside a
// network namespace with loopback alone.

import { createRequire } from 'node:module';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-sync',
  '--disable-extensions',
  '--disable-background-networking',
  '--disable-component-update',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
  '--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,OptimizationHints,OptimizationGuideModelDownloading',
  '--allow-loopback-in-peer-connection',
];

/** playwright-core's chromium, or exit 3 saying how to install it. */
export function playwrightChromium() {
  try {
    return createRequire(import.meta.url)('playwright-core').chromium;
  } catch (e) {
    console.error(`playwright-core is not installed (${e.message.split('\n')[0]}): run scripts/test.sh (npm ci)`);
    process.exit(3);
  }
}
