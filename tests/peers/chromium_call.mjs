// Chromium's ICE agent (libwebrtc) against `edgeice call`, signalling through
// files in the format `edgeice call` reads and writes.
//
// Usage: node chromium_call.mjs CHROMIUM_SDP EDGEICE_SDP offerer|answerer TURN_HOST:PORT USER PASS
//
// Chromium offers relayed candidates only, from the TURN server given (in a
// namespace with loopback alone it gathers no host candidate).
// offerer: Chromium offers (a data channel) and controls; its description
// goes to CHROMIUM_SDP, and its answer is built from edgeice's ICE lines.
// answerer: an offer is built around edgeice's ICE lines (edgeice controls)
// and Chromium's answer goes to CHROMIUM_SDP. Exits 0 once Chromium's ICE
// transport is connected with a selected candidate pair (DTLS is not what
// this tests: the descriptions carry a placeholder fingerprint, so the
// connection fails after ICE, which Chromium reports separately). Run it only
// inside a network namespace with loopback alone, as
// crates/edgeice/tests/interop_chromium.rs does. Every wait is bounded.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { CHROMIUM, CHROMIUM_ARGS, playwrightChromium } from './chromium.mjs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const OVERALL_TIMEOUT_MS = 60_000;
const WAIT_MS = 20_000;

const [chromiumSdp, edgeiceSdp, mode, turn, username, credential] = process.argv.slice(2);
if (!chromiumSdp || !edgeiceSdp || !['offerer', 'answerer'].includes(mode) || !turn || !username || !credential) {
  console.error('usage: node chromium_call.mjs CHROMIUM_SDP EDGEICE_SDP offerer|answerer TURN_HOST:PORT USER PASS');
  process.exit(2);
}

const chromium = playwrightChromium();

const overall = setTimeout(() => {
  console.error(`FAIL (${mode}): no result within ${OVERALL_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);


const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits for edgeice's description to be complete; returns its ICE lines. */
async function edgeiceLines() {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    let text = '';
    try {
      text = readFileSync(edgeiceSdp, 'utf8');
    } catch {}
    const lines = text.split('\n').map((l) => l.trim());
    if (lines.includes('a=end-of-candidates')) {
      const ufrag = lines.find((l) => l.startsWith('a=ice-ufrag:'));
      const pwd = lines.find((l) => l.startsWith('a=ice-pwd:'));
      const candidates = lines.filter((l) => l.startsWith('a=candidate:'));
      return { ufrag, pwd, candidates };
    }
    await sleep(20);
  }
  throw new Error(`no complete description in ${edgeiceSdp} within ${WAIT_MS / 1000} s`);
}

// A placeholder DTLS fingerprint: Chromium requires one; ICE does not use it.
const FINGERPRINT = 'a=fingerprint:sha-256 ' + Array.from({ length: 32 }, (_, i) => (i * 7 + 16).toString(16).padStart(2, '0').toUpperCase()).join(':');

/** Chromium's session with ICE lines swapped for edgeice's. */
function withEdgeiceIce(sdp, ice, setup) {
  const out = [];
  for (const line of sdp.split('\r\n')) {
    if (!line) continue;
    if (/^a=(ice-ufrag|ice-pwd|candidate|end-of-candidates|ice-options|setup|fingerprint):/.test(line) || line === 'a=end-of-candidates') continue;
    out.push(line);
    if (line.startsWith('m=')) {
      out.push(ice.ufrag, ice.pwd, 'a=ice-options:trickle', FINGERPRINT, `a=setup:${setup}`, ...ice.candidates, 'a=end-of-candidates');
    }
  }
  return out.join('\r\n') + '\r\n';
}

/** An offer around edgeice's ICE lines: one data channel section. */
function offerFor(ice) {
  return [
    'v=0',
    'o=- 1 1 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'a=group:BUNDLE 0',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
    'c=IN IP4 0.0.0.0',
    'a=mid:0',
    'a=sctp-port:5000',
    ice.ufrag,
    ice.pwd,
    'a=ice-options:trickle',
    FINGERPRINT,
    'a=setup:actpass',
    ...ice.candidates,
    'a=end-of-candidates',
  ].join('\r\n') + '\r\n';
}

async function main() {
  const userDataDir = mkdtempSync(join(tmpdir(), 'edgeice-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  } catch (e) {
    console.error(`FAIL: cannot start ${CHROMIUM}: ${e.message}`);
    return 1;
  }
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto('about:blank');
    await page.evaluate((server) => {
      window.pc = new RTCPeerConnection({ iceServers: [server], iceTransportPolicy: 'relay' });
      window.log = [];
      pc.oniceconnectionstatechange = () => log.push(`ice ${pc.iceConnectionState}`);
      window.gathered = new Promise((resolve) => {
        pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
      });
    }, { urls: `turn:${turn}`, username, credential });
    if (mode === 'offerer') {
      const offer = await page.evaluate(async () => {
        pc.createDataChannel('edgeice');
        await pc.setLocalDescription(await pc.createOffer());
        await Promise.race([gathered, new Promise((r) => setTimeout(r, 10_000))]);
        return pc.localDescription.sdp;
      });
      writeFileSync(chromiumSdp, offer.replaceAll('\r\n', '\n') + 'a=end-of-candidates\n');
      const answer = withEdgeiceIce(offer, await edgeiceLines(), 'active');
      await page.evaluate((sdp) => pc.setRemoteDescription({ type: 'answer', sdp }), answer);
    } else {
      const offer = offerFor(await edgeiceLines());
      const answer = await page.evaluate(async (sdp) => {
        await pc.setRemoteDescription({ type: 'offer', sdp });
        await pc.setLocalDescription(await pc.createAnswer());
        await Promise.race([gathered, new Promise((r) => setTimeout(r, 10_000))]);
        return pc.localDescription.sdp;
      }, offer);
      writeFileSync(chromiumSdp, answer.replaceAll('\r\n', '\n') + 'a=end-of-candidates\n');
    }
    const result = await page.evaluate(async (waitMs) => {
      const deadline = Date.now() + waitMs;
      while (Date.now() < deadline && !['connected', 'completed'].includes(pc.iceConnectionState)) {
        if (pc.iceConnectionState === 'failed') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
      });
      const describe = (id) => {
        const c = id && stats.get(id);
        return c ? `${c.candidateType} ${c.address}:${c.port}` : null;
      };
      return { state: pc.iceConnectionState, log, pair: pair && { local: describe(pair.localCandidateId), remote: describe(pair.remoteCandidateId), nominated: pair.nominated } };
    }, WAIT_MS);
    if (!['connected', 'completed'].includes(result.state) || !result.pair) {
      console.error(`FAIL (${mode}): Chromium's ICE did not connect`);
      console.error(JSON.stringify(result, null, 2));
      return 1;
    }
    console.log(`OK: Chromium ${context.browser()?.version() ?? ''} (${mode}) connected by ICE to edgeice: ${result.pair.local} -> ${result.pair.remote}`);
    // Stay a moment: edgeice may still want answers to its own checks.
    await sleep(1500);
    return 0;
  } catch (e) {
    console.error(`FAIL (${mode}): ${e.message}`);
    return 1;
  } finally {
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

const code = await main();
clearTimeout(overall);
process.exit(code);
