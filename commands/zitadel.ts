/** `fleet zitadel setup`: the Zitadel objects a Fleet installation needs, made once. */
import { join } from "node:path";
import { Command, Option } from "@commander-js/extra-typings";
import * as z from "zod";
import { printLine } from "../adapters/output.ts";
import {
  createZitadelManagement,
  type ServiceUser,
  setupZitadel,
} from "../adapters/zitadel/mod.ts";
import { logFormatOption, logLevelOption, UsageError } from "./_cli.ts";
import { readSecret } from "./_secret.ts";
import { signIn, ZitadelFlags, zitadelOptions } from "./_zitadel.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

const SetupFlags = ZitadelFlags.omit({ zitadelProjectId: true }).extend({
  projectName: z.string(),
  newKeys: z.boolean().optional(),
  outputDir: z.string(),
});

/** `fleet zitadel`. */
export function zitadelCommand(): Command {
  const zitadel = new Command("zitadel").description("Prepare Zitadel for Fleet");
  const setup = zitadel.command("setup")
    .description(
      "Create, once, the Fleet project (roles device, operator, viewer, maintainer, admin) and " +
        "the machine users of the operator and the callout, and print what the chart needs",
    );
  // The project is what this makes, so --zitadel-project-id is not taken.
  for (const option of zitadelOptions()) {
    if (option.long !== "--zitadel-project-id") setup.addOption(option);
  }
  setup
    .addOption(
      new Option("--project-name <name>", "the project's name").default("fleet")
        .env("FLEET_ZITADEL_PROJECT_NAME"),
    )
    .addOption(
      new Option("--new-keys", "also add a key to service users that exist (a lost key)")
        .env("FLEET_ZITADEL_NEW_KEYS"),
    )
    .addOption(
      new Option("--output-dir <dir>", "where the new key files are written").default(".")
        .env("FLEET_ZITADEL_OUTPUT_DIR"),
    )
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .action(async () => {
      // The Zitadel flags come from a list, so commander's typing does not see them.
      const flags = SetupFlags.parse(setup.opts());
      const url = flags.zitadelUrl;
      if (url === undefined) {
        throw new UsageError("--zitadel-url is required (or FLEET_ZITADEL_URL)");
      }
      const token = flags.zitadelTokenFile !== undefined
        ? await readSecret("--zitadel-token-file", flags.zitadelTokenFile)
        : flags.zitadelClientId !== undefined
        ? await signIn(url, flags.zitadelClientId)
        : undefined;
      if (token === undefined) {
        throw new UsageError(
          "fleet zitadel setup needs --zitadel-token-file, or --zitadel-client-id to sign in with a code",
        );
      }
      const result = await setupZitadel({
        management: createZitadelManagement({
          baseUrl: url,
          token,
          ...(flags.zitadelOrgId ? { orgId: flags.zitadelOrgId } : {}),
        }),
        projectName: flags.projectName,
        keyExpiration: new Date(Date.now() + flags.keyLifetime * DAY_MS),
        newKeys: flags.newKeys === true,
      });
      const { projectId } = result;
      printLine(
        `Project "${flags.projectName}": ${projectId} (${
          result.projectCreated ? "created" : "exists"
        }); roles ${
          result.rolesAdded.length > 0 ? `added: ${result.rolesAdded.join(", ")}` : "all present"
        }`,
      );
      const keyFiles: Record<string, string> = {};
      for (const user of [result.operator, result.callout]) {
        keyFiles[user.userName] = await report(user, flags.outputDir);
      }
      printLine("");
      printLine("For the chart (release namespace):");
      printLine(
        `  kubectl create secret generic fleet-operator-oidc --from-file=key=${
          keyFiles["fleet-operator"]
        }`,
      );
      printLine(
        // --set-string: --set would turn the 18-digit id into a rounded number.
        `  helm install ... --set nats.oidc.issuer=${url} ` +
          `--set nats.oidc.keySecret=fleet-operator-oidc ` +
          `--set-string nats.oidc.zitadelProjectId=${projectId} ` +
          `--set callout.oidc.issuer=${url} --set-string callout.oidc.audience=${projectId} ` +
          `--set callout.oidc.roleClaim=urn:zitadel:iam:org:project:roles`,
      );
      printLine(
        `  callout [oidc]: issuer = "${url}", audience = "${projectId}", ` +
          `role_claim = "urn:zitadel:iam:org:project:roles", roles = { device = "device", ` +
          `operator = "operator", viewer = "viewer", maintainer = "maintainer", admin = "admin" }`,
      );
      printLine(
        `Devices: fleet device enroll ... --zitadel-url ${url} --zitadel-project-id ${projectId}`,
      );
    });
  return zitadel;
}

/** Writes a new key file (owner-only) and prints one line about the user. */
async function report(user: ServiceUser, dir: string): Promise<string> {
  const path = join(dir, `${user.userName}-key.json`);
  const state = user.created ? "created" : "exists";
  if (user.keyFile === undefined) {
    printLine(
      `${user.userName}: user ${user.userId} (${state}), no new key (Zitadel never shows a key ` +
        `again; --new-keys adds one)`,
    );
    return path;
  }
  await Deno.writeTextFile(path, user.keyFile, { mode: 0o600 });
  await Deno.chmod(path, 0o600);
  printLine(`${user.userName}: user ${user.userId} (${state}), new key written to ${path}`);
  return path;
}
