import assert from "node:assert/strict";
import { chooseAccel, kvmProbeArgs, kvmProbeBootSector, PROBE_EXIT_CODE } from "./accel.ts";

Deno.test("kvmProbeBootSector() is a BIOS boot sector that writes to the debug-exit port", () => {
  const sector = kvmProbeBootSector();
  assert.equal(sector.length, 512);
  assert.deepEqual([...sector.subarray(0, 4)], [0xb0, 0x31, 0xe6, 0xf4]);
  assert.deepEqual([sector[510], sector[511]], [0x55, 0xaa]);
  assert.equal(PROBE_EXIT_CODE, 99);
  const args = kvmProbeArgs("/tmp/p.img");
  assert.ok(args.includes("isa-debug-exit,iobase=0xf4,iosize=0x01"));
  assert.ok(args.includes("kvm"));
});

Deno.test("chooseAccel() uses KVM only when the probe ran a guest of the host's arch", () => {
  assert.equal(
    chooseAccel({ guestArch: "x86_64", hostArch: "x86_64", kvmProbeExitCode: 99 }).accel,
    "kvm",
  );
  assert.deepEqual(
    chooseAccel({ guestArch: "aarch64", hostArch: "x86_64", kvmProbeExitCode: 99 }),
    {
      accel: "tcg",
      why: "a aarch64 guest on a x86_64 host",
    },
  );
  assert.equal(
    chooseAccel({ guestArch: "x86_64", hostArch: "x86_64", kvmProbeExitCode: undefined }).why,
    "no usable /dev/kvm",
  );
  assert.match(
    chooseAccel({ guestArch: "x86_64", hostArch: "x86_64", kvmProbeExitCode: 1 }).why,
    /exit code 1/,
  );
  assert.match(
    chooseAccel({ guestArch: "x86_64", hostArch: "x86_64", kvmProbeExitCode: "timeout" }).why,
    /timed out/,
  );
});

Deno.test("chooseAccel() takes TCG on an x86 CPU without VT-x/AMD-V, whatever the probe did", () => {
  // PVM: /dev/kvm opens and runs the real-mode probe, then hangs a normal kernel.
  const pvm = chooseAccel({
    guestArch: "x86_64",
    hostArch: "x86_64",
    hardwareVirt: false,
    kvmProbeExitCode: 99,
  });
  assert.equal(pvm.accel, "tcg");
  assert.match(pvm.why, /no VT-x\/AMD-V .*paravirtualised \(PVM\)/);
  assert.equal(
    chooseAccel({
      guestArch: "x86_64",
      hostArch: "x86_64",
      hardwareVirt: true,
      kvmProbeExitCode: 99,
    })
      .accel,
    "kvm",
  );
});
