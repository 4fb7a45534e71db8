// A fastingest producer for Node.js 18 or newer, with the built-in fetch.
//
// It POSTs a batch of parcels, waits and tries again on 503 as Retry-After
// says, and sends each half of a batch on its own when the server answers 413
// (the body is over MAX_BODY_BYTES). FASTINGEST_URL says where (default
// http://127.0.0.1:8080/), FASTINGEST_TOKEN as whom (optional). It exits 1
// when a batch is not accepted.
//
//   FASTINGEST_URL=http://127.0.0.1:8080/ node examples/node/send.mjs

const ATTEMPTS = 8; // tries of one batch on 408, 429, 503 or a network error
const MAX_WAIT_MS = 30_000; // the longest wait for one Retry-After
const RETRY = new Set([408, 429, 503]);

const url = process.env.FASTINGEST_URL || "http://127.0.0.1:8080/";
const headers = { "Content-Type": "application/json" };
if (process.env.FASTINGEST_TOKEN) headers.Authorization = `Bearer ${process.env.FASTINGEST_TOKEN}`;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// retryAfterMs returns the wait a Retry-After value asks for (seconds or an
// HTTP date), at most MAX_WAIT_MS; 1 s when it is missing or unreadable.
function retryAfterMs(value) {
  let ms = 1000;
  if (/^\d+$/.test(value ?? "")) ms = Number(value) * 1000;
  else if (!Number.isNaN(Date.parse(value))) ms = Date.parse(value) - Date.now();
  return Math.min(Math.max(ms, 0), MAX_WAIT_MS);
}

// send POSTs parcels as one batch and resolves to how many were accepted. A
// refused batch queued nothing, so sending it again stores nothing twice; only
// a retry after a network error, or after a 503 with ACK=persisted, may:
// readers that must not see duplicates drop them by id.
async function send(parcels) {
  const body = JSON.stringify({ Data: parcels });
  for (let attempt = 1; ; attempt++) {
    let res;
    try {
      res = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(60_000) });
    } catch (err) {
      if (attempt >= ATTEMPTS) throw new Error(`cannot send: ${err.cause?.message ?? err.message}`);
      await sleep(attempt * 1000);
      continue;
    }
    const answer = await res.text();
    if (res.status === 202) return JSON.parse(answer).accepted;
    if (res.status === 413 && parcels.length > 1) {
      console.error(`413: splitting ${parcels.length} parcels in two`);
      const half = Math.floor(parcels.length / 2);
      return (await send(parcels.slice(0, half))) + (await send(parcels.slice(half)));
    }
    if (RETRY.has(res.status) && attempt < ATTEMPTS) {
      await sleep(retryAfterMs(res.headers.get("Retry-After")));
      continue;
    }
    throw new Error(`${res.status} ${answer.trim()}`);
  }
}

const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
const batch = Array.from({ length: 200 }, (_, i) => ({ id: `node-${i + 1}`, time: now, data: `reading ${i + 1}` }));
try {
  const accepted = await send(batch);
  console.log(`accepted ${accepted} of ${batch.length} parcels`);
} catch (err) {
  console.error(`not accepted: ${err.message}`);
  process.exit(1);
}
