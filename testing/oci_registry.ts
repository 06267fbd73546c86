/**
 * A container registry in memory, over plain HTTP on loopback: the part of the OCI
 * distribution API a push uses (blob uploads, monolithic or chunked, and manifests by tag or
 * digest), and reads of what was pushed. Enough for `podman manifest push` to push an image
 * index; tests read back what the registry received (a real push, real compressed layers).
 */

import { createHash } from "node:crypto";

/** A running registry; `await using` stops it. */
export interface OciRegistry extends AsyncDisposable {
  /** `127.0.0.1:<port>`, the registry part of an image reference. */
  readonly host: string;
  /** A manifest (or index) by `repo` and tag or digest, with its media type. */
  manifest(repo: string, reference: string): { mediaType: string; body: string } | undefined;
  /** The size of a blob, when it was pushed. */
  blobSize(digest: string): number | undefined;
}

const UPLOAD = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/;
const BLOB = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/;
const MANIFEST = /^\/v2\/(.+)\/manifests\/([^/]+)$/;

function sha256(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** Starts the registry on a free loopback port. */
export function startOciRegistry(): OciRegistry {
  const blobs = new Map<string, Uint8Array>();
  const uploads = new Map<string, Uint8Array<ArrayBuffer>[]>();
  const manifests = new Map<string, { mediaType: string; body: string }>();
  const headers = { "Docker-Distribution-API-Version": "registry/2.0" };

  const finishUpload = async (repo: string, id: string, digest: string | null) => {
    const data = new Uint8Array(await new Blob(uploads.get(id) ?? []).arrayBuffer());
    uploads.delete(id);
    if (digest === null || sha256(data) !== digest) {
      return new Response('{"errors":[{"code":"DIGEST_INVALID"}]}', { status: 400, headers });
    }
    blobs.set(digest, data);
    return new Response(null, {
      status: 201,
      headers: {
        ...headers,
        Location: `/v2/${repo}/blobs/${digest}`,
        "Docker-Content-Digest": digest,
      },
    });
  };

  const handle = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const path = url.pathname;
    const body = async () => new Uint8Array(await request.arrayBuffer());
    if (path === "/v2/" || path === "/v2") return Response.json({}, { headers });

    const upload = UPLOAD.exec(path);
    if (upload) {
      const [, repo, id] = upload as unknown as [string, string, string];
      if (request.method === "POST") {
        const fresh = crypto.randomUUID();
        uploads.set(fresh, [await body()]);
        const digest = url.searchParams.get("digest");
        if (digest !== null) return await finishUpload(repo, fresh, digest);
        return new Response(null, {
          status: 202,
          headers: {
            ...headers,
            Location: `/v2/${repo}/blobs/uploads/${fresh}`,
            "Docker-Upload-UUID": fresh,
            Range: "0-0",
          },
        });
      }
      const chunks = uploads.get(id);
      if (chunks === undefined) return new Response(null, { status: 404, headers });
      chunks.push(await body());
      if (request.method === "PUT") {
        return await finishUpload(repo, id, url.searchParams.get("digest"));
      }
      const size = chunks.reduce((sum, c) => sum + c.length, 0);
      return new Response(null, {
        status: 202,
        headers: {
          ...headers,
          Location: `/v2/${repo}/blobs/uploads/${id}`,
          "Docker-Upload-UUID": id,
          Range: `0-${Math.max(0, size - 1)}`,
        },
      });
    }

    const blob = BLOB.exec(path);
    if (blob) {
      const data = blobs.get(blob[2]!);
      if (data === undefined) return new Response(null, { status: 404, headers });
      const h = {
        ...headers,
        "Content-Length": String(data.length),
        "Docker-Content-Digest": blob[2]!,
      };
      return new Response(request.method === "HEAD" ? null : data.slice(), { headers: h });
    }

    const manifest = MANIFEST.exec(path);
    if (manifest) {
      const [, repo, reference] = manifest as unknown as [string, string, string];
      if (request.method === "PUT") {
        const data = await body();
        const digest = sha256(data);
        const stored = {
          mediaType: request.headers.get("Content-Type") ?? "",
          body: new TextDecoder().decode(data),
        };
        manifests.set(`${repo}@${digest}`, stored);
        if (!reference.startsWith("sha256:")) manifests.set(`${repo}:${reference}`, stored);
        return new Response(null, {
          status: 201,
          headers: {
            ...headers,
            Location: `/v2/${repo}/manifests/${digest}`,
            "Docker-Content-Digest": digest,
          },
        });
      }
      const key = reference.startsWith("sha256:") ? `${repo}@${reference}` : `${repo}:${reference}`;
      const stored = manifests.get(key);
      if (stored === undefined) return new Response(null, { status: 404, headers });
      const data = new TextEncoder().encode(stored.body);
      return new Response(request.method === "HEAD" ? null : data, {
        headers: {
          ...headers,
          "Content-Type": stored.mediaType,
          "Content-Length": String(data.length),
          "Docker-Content-Digest": sha256(data),
        },
      });
    }
    return new Response(null, { status: 404, headers });
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handle);
  return {
    host: `127.0.0.1:${server.addr.port}`,
    manifest: (repo, reference) =>
      manifests.get(
        reference.startsWith("sha256:") ? `${repo}@${reference}` : `${repo}:${reference}`,
      ),
    blobSize: (digest) => blobs.get(digest)?.length,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}
