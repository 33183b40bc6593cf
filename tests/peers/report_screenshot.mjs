// Opens an `edgeice analyze --format html` report in headless Chromium,
// checks that its call diagrams rendered (candidates and pairs drawn, with a
// real size), and saves a screenshot. It reports what the browser drew: each
// media line's label and each pair's ends, data-crossing and the stroke
// colour Chromium computed, for the test to hold against the verdict.
//
// Usage: node report_screenshot.mjs REPORT.html SCREENSHOT.png
//
// Run it only inside a network namespace with loopback alone, as
// crates/analyze tests do through the edgeice crate's report test: the page
// is a local file that loads nothing, and the namespace guarantees it.
// Prints one JSON line {candidates, pairs, width, height, media, drawn};
// exits 0 only if the diagram rendered, else prints why on stderr and exits 1.

import { mkdtempSync, rmSync } from 'node:fs';
import { CHROMIUM, CHROMIUM_ARGS, playwrightChromium } from './chromium.mjs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const [report, screenshot] = process.argv.slice(2);
if (!report || !screenshot) {
  console.error('usage: node report_screenshot.mjs REPORT.html SCREENSHOT.png');
  process.exit(2);
}
const chromium = playwrightChromium();
const overall = setTimeout(() => {
  console.error('FAIL: no result within 60 s');
  process.exit(1);
}, 60_000);

const userDataDir = mkdtempSync(join(tmpdir(), 'edgeice-report-'));
let code = 1;
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
    viewport: { width: 1000, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto('file://' + resolve(report), { timeout: 20_000 });
  const drawn = await page.evaluate(() => {
    const svg = document.querySelector('.diagram');
    const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
    const media = [...document.querySelectorAll('.diagram')].map((d) => {
      const line = (side, i) =>
        Number(d.querySelector(`.candidate[data-side="${side}"][data-index="${i}"]`)?.dataset.line);
      return {
        kind: d.dataset.kind,
        label: d.querySelector('.media-label')?.textContent ?? '',
        candidates: d.querySelectorAll('.candidate').length,
        pairs: [...d.querySelectorAll('.pair')].map((p) => ({
          offer_line: line('offer', p.dataset.offer),
          answer_line: line('answer', p.dataset.answer),
          crossing: p.dataset.crossing,
          stroke: getComputedStyle(p).stroke,
          visible: p.getBoundingClientRect().height > 0 || p.getBoundingClientRect().width > 0,
        })),
      };
    });
    return {
      candidates: document.querySelectorAll('.diagram .candidate').length,
      pairs: document.querySelectorAll('.diagram .pair').length,
      width: box.width,
      height: box.height,
      verdict: document.querySelector('#verdict')?.textContent ?? '',
      read: document.querySelector('#read')?.textContent ?? '',
      media,
    };
  });
  await page.screenshot({ path: screenshot, fullPage: process.env.FULL_PAGE === '1' });
  console.log(JSON.stringify(drawn));
  if (drawn.candidates > 0 && drawn.width > 0 && drawn.height > 0) {
    code = 0;
  } else {
    console.error('FAIL: the diagram did not render', JSON.stringify(drawn));
  }
} catch (e) {
  console.error(`FAIL: ${e.message}`);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
  clearTimeout(overall);
}
process.exit(code);
