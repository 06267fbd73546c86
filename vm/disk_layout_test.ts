import assert from "node:assert/strict";
import { masterBootRecord, ROOT_OFFSET, SECTOR } from "./disk_layout.ts";

Deno.test("masterBootRecord() describes one Linux partition from 1 MiB to the end", () => {
  const disk = 4 * 1024 * 1024 * 1024;
  const mbr = masterBootRecord(disk, 0x12345678);
  const view = new DataView(mbr.buffer);
  assert.equal(mbr.length, SECTOR);
  assert.equal(view.getUint32(440, true), 0x12345678);
  assert.equal(mbr[446], 0x80);
  assert.equal(mbr[450], 0x83);
  assert.equal(view.getUint32(454, true), ROOT_OFFSET / SECTOR);
  assert.equal(view.getUint32(458, true), disk / SECTOR - ROOT_OFFSET / SECTOR);
  // The other three entries are empty.
  assert.ok(mbr.subarray(462, 510).every((b) => b === 0));
  assert.deepEqual([mbr[510], mbr[511]], [0x55, 0xaa]);
});

Deno.test("masterBootRecord() refuses sizes it cannot describe", () => {
  assert.throws(() => masterBootRecord(ROOT_OFFSET, 1), RangeError);
  assert.throws(() => masterBootRecord(10 * 1024 * 1024 + 1, 1), RangeError);
  assert.throws(() => masterBootRecord(4 * 1024 ** 4, 1), /2 TiB/);
});
