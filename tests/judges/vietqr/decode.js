// An outside judge of VietQR payloads: decodes one with the npm package vietnam-qr-pay (pinned
// in package-lock.json) and prints, as one JSON line, what that package reads from it. The
// gateway's tests compare it with what the payment was created with (tests/support, vietqr_judge).
//
// Usage: node decode.js PAYLOAD   or   echo -n PAYLOAD | node decode.js
'use strict';

const { QRPay } = require('vietnam-qr-pay');

function readPayload() {
  if (process.argv.length > 2) {
    return process.argv[2];
  }
  // The whole of stdin; only a trailing newline (as `echo` adds) is removed.
  return require('fs').readFileSync(0, 'utf8').replace(/\r?\n$/, '');
}

const payload = readPayload();
const qr = new QRPay(payload);
const orNull = (v) => (v === undefined ? null : v);

const out = {
  // The package's verdict: its CRC check passed and the top-level fields parsed.
  valid: qr.isValid,
  // The package's own CRC check alone (it compares the last 4 characters, upper-cased, with
  // its CRC-16 of everything before them).
  crc_ok: payload.length >= 4 && QRPay.verifyCRC(payload),
  crc: orNull(qr.crc),
  version: orNull(qr.version),
  init_method: orNull(qr.initMethod),
  provider: orNull(qr.provider.name),
  guid: orNull(qr.provider.guid),
  service: orNull(qr.provider.service),
  bank_bin: orNull(qr.consumer.bankBin),
  account: orNull(qr.consumer.bankNumber),
  amount: orNull(qr.amount),
  currency: orNull(qr.currency),
  nation: orNull(qr.nation),
  merchant_name: orNull(qr.merchant.name),
  city: orNull(qr.city),
  purpose: orNull(qr.additionalData.purpose),
  bill_number: orNull(qr.additionalData.billNumber),
  reference: orNull(qr.additionalData.reference),
};
process.stdout.write(JSON.stringify(out) + '\n');
