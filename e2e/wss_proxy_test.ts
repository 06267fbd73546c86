/**
 * A device behind an HTTPS-only network path (issue 13, item 4): HAProxy terminates TLS, as the
 * OpenShift router does for an edge Route, in front of nats-server's WebSocket listener; the
 * auth callout checks every OIDC token. The agent (`fleet agent run --config`), the operator
 * (`fleet operator run`) and the CLI all connect with `wss://` and the CA file, as separate
 * processes, and ride out a proxy restart and a nats-server restart.
 */
import assert from "node:assert/strict";
import { ContainerLabels, MANAGED_BY } from "../core/mod.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { TLS_CA_STORE } from "../packaging/deb.ts";
import { type MachineUser, startTestProvider } from "../testing/oidc_provider.ts";
import { startEdgeProxy } from "../testing/haproxy.ts";
import { startEdgeNats, writeAgentConfig, writeKeyFile } from "../testing/edge_nats.ts";
import { makeTestCertificates } from "../testing/tls.ts";
import { tempDir } from "../testing/temp_dir.ts";
import { eventually } from "../testing/eventually.ts";
import { fleet, FleetProcess } from "./_helpers.ts";
import { stopOnDeadline, story, testLogger } from "./_story.ts";

/** Each step of the story waits this long at most: processes start slowly on 2 busy cores. */
const STEP_MS = 120_000;

story(
  "wss://: agent, operator and CLI reach NATS through an edge-TLS proxy with OIDC, and ride out restarts of both",
  { deadlineMs: 10 * 60_000 },
  async () => {
    await using dir = await tempDir("fleet-wss-");
    await using idp = await startTestProvider({ accessTokenTtlSeconds: 600 });
    const device = await idp.addMachineUser({ id: "pi-1", roles: ["device"], deviceId: "pi-1" });
    const operatorUser = await idp.addMachineUser({ id: "fleet-operator", roles: ["operator"] });
    const admin = await idp.addMachineUser({ id: "alice", roles: ["admin"] });
    await using edge = stopOnDeadline(await startEdgeNats(dir.path, idp, testLogger()));
    const { ns, proxy, certs, callout } = edge;
    const stranger = await makeTestCertificates(dir.path, "stranger", ["IP:127.0.0.1"]);
    await using podman = stopOnDeadline(await startPodmanService());
    using client = new PodmanClient({ socketPath: podman.socketPath });
    await ensureTestImage(client, "v1");
    await ensureTestImage(client, "v2");
    const managed = () =>
      client.listContainers({
        [ContainerLabels.managedBy]: MANAGED_BY,
        [ContainerLabels.deviceId]: "pi-1",
      });

    const nats = ["--nats-url", proxy.url, "--nats-ca", certs.caFile];
    const as = async (user: MachineUser) => [
      ...["--oidc-issuer", idp.issuer, "--oidc-client-id", user.clientId],
      ...["--oidc-key", await writeKeyFile(dir.path, user), "--oidc-audience", idp.audience],
    ];
    const adminIdentity = await as(admin);
    const asAdmin = [...nats, ...adminIdentity];
    const piOne = {
      deviceId: "pi-1",
      urls: [proxy.url],
      caFile: certs.caFile,
      idp,
      user: device,
      podmanSocket: podman.socketPath,
    };
    const agentConfig = await writeAgentConfig(dir.path, piOne);
    /** The deployment's aggregate as `fleet get deployments` over wss:// shows it. */
    const aggregate = async () => {
      const r = await fleet(["get", "deployments", "-o", "json", ...asAdmin]);
      assert.equal(r.code, 0, r.stderr);
      const item = JSON.parse(r.stdout).items[0];
      return { generation: item?.status?.observedGeneration, ...item?.status?.aggregate };
    };
    try {
      await using operator = new FleetProcess("operator", [
        ...["operator", "run", ...nats, ...await as(operatorUser)],
        "--allow-unbound-namespaces",
      ]);
      await using agent = new FleetProcess("agent", ["agent", "run", "--config", agentConfig]);
      const devices = await eventually("fleet get devices over wss:// to list pi-1", async () => {
        const r = await fleet(["get", "devices", ...asAdmin]);
        return /pi-1\s+yes/.test(r.stdout) ? r.stdout : undefined;
      }, STEP_MS);
      assert.match(devices, /site=edge/);
      const where = `127.0.0.1:${proxy.port}`;
      assert.equal(agent.matching(new RegExp(`Connected to NATS at ${where}`)).length, 1);
      assert.equal(operator.matching(new RegExp(`Connected to NATS at ${where}`)).length, 1);

      const label = await fleet(["device", "label", "pi-1", "site=edge", ...asAdmin]);
      assert.equal(label.code, 0, label.stderr);
      const apply = (tag: string) =>
        fleet([
          ...["apply", "deployment", "--name", "web", "--selector", "site=edge"],
          ...["--image", `localhost/fleet-test:${tag}`, ...asAdmin],
        ]);
      const applied = await apply("v1");
      assert.equal(applied.code, 0, applied.stderr);
      await eventually("web to run on pi-1", async () => {
        const a = await aggregate();
        return a.succeeded === 1 && a.generation === 1;
      }, STEP_MS);
      const [container] = await managed();
      assert.equal(container?.state, "running");

      // Without --nats-ca the route's CA must be in the system's store: trusted with the store
      // the package's launcher and unit select, refused by Deno's own roots.
      const viaSystem = (env: Record<string, string>) =>
        fleet(["get", "devices", "--nats-url", proxy.url, ...adminIdentity], {
          SSL_CERT_FILE: certs.caFile,
          ...env,
        });
      const system = await viaSystem({ DENO_TLS_CA_STORE: TLS_CA_STORE });
      assert.equal(system.code, 0, system.stderr);
      assert.match(system.stdout, /pi-1\s+yes/);
      const bundled = await viaSystem({ DENO_TLS_CA_STORE: "mozilla" });
      assert.equal(bundled.code, 1, bundled.stderr);
      assert.match(
        bundled.stderr,
        new RegExp(
          `Cannot connect to NATS at ${proxy.url}: its TLS certificate is not signed by a CA ` +
            `this machine trusts`,
        ),
      );

      // An impostor route with another CA's certificate gets no token, from the CLI or an agent.
      const allowed = callout.stats.allowed;
      await using impostor = stopOnDeadline(
        await startEdgeProxy({
          backend: new URL(ns.wsUrl ?? "").host,
          certFile: stranger.certFile,
          keyFile: stranger.keyFile,
        }),
      );
      const refusal = `Cannot connect to NATS at ${impostor.url}: its TLS certificate is not ` +
        `signed by the CA in ${certs.caFile} \\(.*UnknownIssuer\\); if this is the right ` +
        `server, give the PEM file of the CA that signed its certificate`;
      const cli = await fleet([
        ...["get", "devices", "--nats-url", impostor.url, "--nats-ca", certs.caFile],
        ...adminIdentity,
      ]);
      assert.equal(cli.code, 1, cli.stderr);
      assert.match(cli.stderr, new RegExp(refusal));
      const misled = await writeAgentConfig(dir.path, { ...piOne, urls: [impostor.url] }, "misled");
      {
        await using fooled = new FleetProcess("misled agent", ["agent", "run", "--config", misled]);
        await eventually(
          "the misled agent to say why it cannot connect",
          () => fooled.matching(new RegExp(`${refusal}.*; still trying in the background`)).length,
          STEP_MS,
        );
      }
      assert.equal(callout.stats.allowed, allowed, "no token reached the impostor's NATS");

      // The router restarts (a new release, a node drained): every tunnel is cut.
      const lost = new RegExp(
        `Lost connection to NATS at ${where}; reconnecting in the background \\(running ` +
          `containers are not affected\\)`,
      );
      const back = new RegExp(`Reconnected to NATS at ${where} after [\\d.]+ s`);
      await proxy.restart();
      await eventually(
        "the agent and operator to reconnect through the proxy",
        () => agent.matching(back).length === 1 && operator.matching(back).length === 1,
        STEP_MS,
      );
      assert.equal(agent.matching(lost).length, 1, agent.lines.join("\n"));
      assert.deepEqual(
        (await managed()).map((c) => [c.id, c.state]),
        [[container!.id, "running"]],
        "the container ran on, untouched",
      );

      // nats-server restarts on its JetStream store; the callout reconnects over TCP.
      await ns.restart();
      await eventually(
        "the agent and operator to reconnect after NATS restarted",
        () => agent.matching(back).length === 2 && operator.matching(back).length === 2,
        STEP_MS,
      );
      const updated = await apply("v2");
      assert.equal(updated.code, 0, updated.stderr);
      await eventually("web v2 to run on pi-1", async () => {
        const a = await aggregate();
        const running = await managed();
        return a.succeeded === 1 && a.generation === 2 &&
          running.length === 1 && running[0]?.image === "localhost/fleet-test:v2";
      }, STEP_MS);
      assert.equal(agent.matching(/Cannot connect to NATS/).length, 0, agent.lines.join("\n"));
      assert.ok(callout.stats.allowed >= 6, JSON.stringify(callout.stats));

      // The device reboots while the route is down: it runs from its cached desired state, the
      // container untouched, and connects once the route is back.
      const [v2] = await managed();
      await agent[Symbol.asyncDispose]();
      await proxy.stop();
      await using rebooted = new FleetProcess("rebooted agent", [
        ...["agent", "run", "--config", agentConfig],
      ]);
      await eventually(
        "the rebooted agent to run from its cache and keep trying",
        () =>
          rebooted.matching(/Running 1 deployment\(s\) from the local cache until NATS answers/)
              .length === 1 &&
          rebooted.matching(
              new RegExp(`Cannot connect to NATS at ${where}: .*; still trying in the background`),
            ).length >= 1,
        STEP_MS,
      );
      await proxy.start();
      await eventually(
        "the rebooted agent to connect through the route again",
        () => rebooted.matching(new RegExp(`Connected to NATS at ${where}`)).length === 1,
        STEP_MS,
      );
      await eventually(
        "the rebooted agent to read its desired state through the route",
        () => rebooted.matching(/Read the desired state from NATS: 1 deployment\(s\)/).length === 1,
        STEP_MS,
      );
      assert.deepEqual((await managed()).map((c) => c.id), [v2!.id], "nothing recreated");
      assert.equal(rebooted.matching(/Creating container/).length, 0, rebooted.lines.join("\n"));
    } finally {
      for (const c of await managed()) await client.removeContainer(c.id);
    }
  },
);
