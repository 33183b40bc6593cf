// Two RTCPeerConnections in one headless Chromium page connect through a TURN
// server with relay candidates only, open a data channel, and send a message
// each way.
//
// Usage: node chromium_relay.mjs HOST:PORT udp|tcp [USERNAME PASSWORD]
//
// Needs Debian's chromium at /usr/bin/chromium and playwright-core from
// npm (scripts/test.sh installs both; playwright-core never downloads a
// browser). Run it only inside a network namespace that has nothing but
// loopback, as crates/edgeice/tests/interop_chromium.rs does: Chromium is
// told to resolve no name and is given no other network, but the namespace is
// what guarantees it. Exits 0 only when both messages arrived over a
// relay-relay pair that used the requested transport to the TURN server;
// otherwise prints why on stderr and exits 1. Every wait is bounded.

import { mkdtempSync, rmSync } from 'node:fs';
import { CHROMIUM, CHROMIUM_ARGS, playwrightChromium } from './chromium.mjs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';


const LAUNCH_TIMEOUT_MS = 30_000;
const PAGE_TIMEOUT_MS = 20_000;
const OVERALL_TIMEOUT_MS = 60_000;

function usage() {
  console.error('usage: node chromium_relay.mjs HOST:PORT udp|tcp [USERNAME PASSWORD]');
  process.exit(2);
}

const [serverArg, transport, username = 'user', credential = 'pass'] = process.argv.slice(2);
if (!serverArg || !['udp', 'tcp'].includes(transport)) usage();

const chromium = playwrightChromium();

// Whatever happens, stop.
const overall = setTimeout(() => {
  console.error(`FAIL (${transport}): no result within ${OVERALL_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

const url = `turn:${serverArg}?transport=${transport}`;
const userDataDir = mkdtempSync(join(tmpdir(), 'edgeice-chromium-'));


// Runs in the page.
async function relayThroughTurn({ url, username, credential, transport, timeoutMs }) {
  const config = {
    iceServers: [{ urls: url, username, credential }],
    iceTransportPolicy: 'relay',
  };
  const pc1 = new RTCPeerConnection(config);
  const pc2 = new RTCPeerConnection(config);
  const log = [];
  const candidates = { pc1: [], pc2: [] };
  const errors = [];
  for (const [name, pc, other] of [['pc1', pc1, pc2], ['pc2', pc2, pc1]]) {
    pc.onicecandidate = (e) => {
      if (!e.candidate) {
        log.push(`${name}: gathering done`);
        return;
      }
      candidates[name].push(e.candidate.candidate);
      other.addIceCandidate(e.candidate).catch((err) => errors.push(`${name}→addIceCandidate: ${err}`));
    };
    pc.onicecandidateerror = (e) =>
      errors.push(`${name}: icecandidateerror ${e.errorCode} ${e.errorText} (${e.url})`);
    pc.oniceconnectionstatechange = () => log.push(`${name}: ice ${pc.iceConnectionState}`);
    pc.onconnectionstatechange = () => log.push(`${name}: connection ${pc.connectionState}`);
  }

  async function selectedPair(pc) {
    const stats = await pc.getStats();
    let pair;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return {
      local: local && { type: local.candidateType, address: `${local.address}:${local.port}`, relayProtocol: local.relayProtocol },
      remote: remote && { type: remote.candidateType, address: `${remote.address}:${remote.port}` },
    };
  }

  const ping = `hello from pc1 over TURN/${transport}`;
  const pong = `hello from pc2 over TURN/${transport}`;

  const work = new Promise((resolve, reject) => {
    // Fail at once when a side has gathered no relay candidate at all.
    const gathered = { pc1: false, pc2: false };
    for (const [name, pc] of [['pc1', pc1], ['pc2', pc2]]) {
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState !== 'complete' || gathered[name]) return;
        gathered[name] = true;
        if (candidates[name].length === 0)
          reject(new Error(`${name} gathered no relay candidate from the TURN server`));
      });
    }
    pc2.ondatachannel = (e) => {
      const channel = e.channel;
      channel.onmessage = (m) => {
        log.push(`pc2: received ${JSON.stringify(m.data)}`);
        if (m.data !== ping) reject(new Error(`pc2 received ${JSON.stringify(m.data)}, expected ${JSON.stringify(ping)}`));
        else channel.send(pong);
      };
    };
    const channel = pc1.createDataChannel('edgeice');
    channel.onopen = () => {
      log.push('pc1: data channel open');
      channel.send(ping);
    };
    channel.onmessage = (m) => {
      log.push(`pc1: received ${JSON.stringify(m.data)}`);
      if (m.data !== pong) reject(new Error(`pc1 received ${JSON.stringify(m.data)}, expected ${JSON.stringify(pong)}`));
      else resolve();
    };
    (async () => {
      const offer = await pc1.createOffer();
      await pc1.setLocalDescription(offer);
      await pc2.setRemoteDescription(offer);
      const answer = await pc2.createAnswer();
      await pc2.setLocalDescription(answer);
      await pc1.setRemoteDescription(answer);
    })().catch(reject);
  });

  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no message each way within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  let failure = null;
  try {
    await Promise.race([work, timeout]);
  } catch (e) {
    failure = String(e.message || e);
  }
  clearTimeout(timer);
  const pairs = { pc1: await selectedPair(pc1), pc2: await selectedPair(pc2) };
  pc1.close();
  pc2.close();
  return { failure, log, candidates, errors, pairs };
}

function fail(message, details) {
  console.error(`FAIL (${transport}): ${message}`);
  if (details) console.error(JSON.stringify(details, null, 2));
  return 1;
}

async function main() {
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: LAUNCH_TIMEOUT_MS,
    });
  } catch (e) {
    return fail(`cannot start ${CHROMIUM} (install Debian's chromium: run scripts/test.sh): ${e.message}`);
  }
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto('about:blank');
    const result = await page.evaluate(relayThroughTurn, {
      url,
      username,
      credential,
      transport,
      timeoutMs: PAGE_TIMEOUT_MS,
    });
    if (process.env.PEER_VERBOSE) console.error(JSON.stringify(result, null, 2));
    if (result.failure) return fail(result.failure, result);
    const nonRelay = [...result.candidates.pc1, ...result.candidates.pc2].filter((c) => !/ typ relay( |$)/.test(c));
    if (nonRelay.length) return fail(`candidates other than relay ones were gathered: ${nonRelay}`, result);
    for (const name of ['pc1', 'pc2']) {
      const pair = result.pairs[name];
      if (!pair || pair.local?.type !== 'relay' || pair.remote?.type !== 'relay')
        return fail(`${name}'s selected pair is not relay-relay`, result);
      if (pair.local.relayProtocol !== transport)
        return fail(`${name} reached the TURN server over ${pair.local.relayProtocol}, not ${transport}`, result);
    }
    console.log(
      `OK: Chromium (${context.browser()?.version() ?? 'persistent'}) sent a data channel message each way ` +
        `over TURN/${transport}: ${result.pairs.pc1.local.address} <-> ${result.pairs.pc1.remote.address}`,
    );
    return 0;
  } catch (e) {
    return fail(`playwright: ${e.message}`);
  } finally {
    await context.close().catch(() => {});
  }
}

const code = await main();
clearTimeout(overall);
rmSync(userDataDir, { recursive: true, force: true });
process.exit(code);
