/**
 * The base image's disk layout: an MBR partition table with one Linux root partition at
 * 1 MiB. Written by hand (512 bytes) so building an image needs neither a loop device nor
 * fdisk, which containers and CI machines often lack.
 */

export const SECTOR = 512;
/** The root file system starts at 1 MiB, the usual alignment. */
export const ROOT_OFFSET = 1024 * 1024;
/** The root file system's label; /etc/fstab mounts it by this label. */
export const ROOT_LABEL = "fleet-root";
/** How the guest kernel sees the root partition (the first virtio disk). */
export const ROOT_DEVICE = "/dev/vda1";

/**
 * A master boot record for a disk of `diskBytes` with one partition of type 0x83 (Linux)
 * from ROOT_OFFSET to the end. CHS fields hold the "use LBA" marker.
 *
 * @throws {RangeError} when the disk is not a whole number of sectors, too small or over 2 TiB.
 */
export function masterBootRecord(diskBytes: number, signature: number): Uint8Array {
  if (diskBytes % SECTOR !== 0 || diskBytes <= ROOT_OFFSET) {
    throw new RangeError(`Disk size ${diskBytes} is not a whole number of sectors above 1 MiB`);
  }
  const start = ROOT_OFFSET / SECTOR;
  const count = diskBytes / SECTOR - start;
  if (start + count > 0xffff_ffff) throw new RangeError("An MBR cannot describe a disk over 2 TiB");
  const mbr = new Uint8Array(SECTOR);
  const view = new DataView(mbr.buffer);
  view.setUint32(440, signature >>> 0, true);
  const entry = 446;
  mbr[entry] = 0x80; // bootable
  mbr.set([0xfe, 0xff, 0xff], entry + 1);
  mbr[entry + 4] = 0x83;
  mbr.set([0xfe, 0xff, 0xff], entry + 5);
  view.setUint32(entry + 8, start, true);
  view.setUint32(entry + 12, count, true);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}
