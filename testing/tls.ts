/**
 * Test certificates made with openssl: a CA, a server certificate it signs for the given
 * names and addresses, and the server's pin, for TLS tests against a real nats-server.
 */

import { join } from "node:path";

/** A CA and one server certificate it signed, as PEM files in `dir`. */
export interface TestCertificates {
  /** The CA certificate clients trust. */
  caFile: string;
  /** The CA's private key, to sign more certificates with {@link issueTestCertificate}. */
  caKeyFile: string;
  certFile: string;
  keyFile: string;
  /** The server key's pin, `sha256//<base64>` of its SubjectPublicKeyInfo. */
  pin: string;
}

const NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

async function openssl(args: string[], stdin?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("openssl", {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  if (code !== 0) {
    throw new Error(`openssl ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
  return stdout;
}

/**
 * Writes a new CA (`<name>-ca.pem`) and a server certificate and key signed by it for
 * `altNames` (e.g. `["IP:127.0.0.1", "DNS:localhost"]`) into `dir`.
 */
export async function makeTestCertificates(
  dir: string,
  name: string,
  altNames: readonly string[],
): Promise<TestCertificates> {
  const caFile = join(dir, `${name}-ca.pem`);
  const caKeyFile = join(dir, `${name}-ca.key`);
  await openssl(["req", "-x509", ...NEW_KEY, "-keyout", caKeyFile, "-out", caFile, "-days", "2"]
    .concat(["-subj", `/CN=${name} test CA`]));
  return await issueTestCertificate(dir, name, { caFile, caKeyFile }, altNames);
}

/**
 * Writes a new key and a server certificate for `altNames` signed by `ca` into `dir`
 * (`<name>-server.pem`, `<name>-server.key`): another server of the same CA.
 */
export async function issueTestCertificate(
  dir: string,
  name: string,
  ca: { caFile: string; caKeyFile: string },
  altNames: readonly string[],
): Promise<TestCertificates> {
  const file = (suffix: string) => join(dir, `${name}-${suffix}`);
  await openssl(["req", ...NEW_KEY, "-keyout", file("server.key"), "-out", file("server.csr")]
    .concat(["-subj", `/CN=${name} nats`]));
  await Deno.writeTextFile(file("ext.cnf"), `subjectAltName=${altNames.join(",")}\n`);
  await openssl([
    "x509",
    "-req",
    "-in",
    file("server.csr"),
    "-CA",
    ca.caFile,
    "-CAkey",
    ca.caKeyFile,
    "-CAcreateserial",
    "-out",
    file("server.pem"),
    "-days",
    "2",
    "-extfile",
    file("ext.cnf"),
  ]);
  const spki = await openssl(["pkey", "-in", file("server.key"), "-pubout", "-outform", "der"]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", spki as BufferSource));
  return {
    ...ca,
    certFile: file("server.pem"),
    keyFile: file("server.key"),
    pin: `sha256//${btoa(String.fromCharCode(...digest))}`,
  };
}

/**
 * An IPv4 address of this machine that is not loopback, for tests of what crosses a real
 * network interface.
 */
export function nonLoopbackAddress(): string {
  const found = Deno.networkInterfaces().find((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.")
  );
  if (found === undefined) {
    throw new Error("this machine has no IPv4 address other than loopback to listen on");
  }
  return found.address;
}
