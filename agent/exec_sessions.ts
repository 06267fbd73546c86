/**
 * `exec` sessions (DESIGN.md §9 "Sessions"): an exec request the device admits (core/exec.ts:
 * its `[remote]` switches, one interactive session at a time) runs the command through the
 * container runtime and streams its output on the session's `out` (stderr frames marked),
 * as far as the requester's credit allows; stdin comes on `in`, credited the other way round
 * (`credit` frames on `out`) as it is written into the command; a terminal's size on `ctl`.
 *
 * The session ends `exited` with the command's exit code once its output is sent, or as any
 * session ends (cancel, idle, the agent stopping), or `taken-over` when another person forces
 * the interactive place, after a notice saying who. Each leaves an audit record with the exit
 * code and never the command's arguments.
 */
import {
  auditArguments,
  type ExecRequest,
  type ExecResult,
  type TerminalSize,
} from "../core/device_commands.ts";
import {
  type DataFrame,
  MAX_FRAME_BYTES,
  type SessionEndReason,
  sessionSubject,
} from "../core/device_sessions.ts";
import {
  admitExec,
  execAuditArguments,
  execContainer,
  type ExecPolicy,
  type OpenExec,
} from "../core/exec.ts";
import { CommandRefused } from "./command_responder.ts";
import type { ContainerRuntime, ExecProcess, ExecTarget } from "./runtime.ts";
import { Session, type SessionContext } from "./session.ts";

/** The most output one exec session sends. */
export const EXEC_MAX_BYTES = 256 * 1024 * 1024;
/** Stdin the requester may send ahead of what was written into the command. */
export const STDIN_WINDOW = 64 * 1024;

/** What exec sessions run on. */
export interface ExecSessionsOptions extends SessionContext {
  runtime: Pick<ContainerRuntime, "listManaged" | "exec" | "removeHostShells">;
  /** The device's own `[remote]` switches. */
  policy: ExecPolicy;
  /** @default EXEC_MAX_BYTES */
  maxBytes?: number;
}

interface OpenSession extends OpenExec {
  session: Session;
}

/** The open exec sessions of a device: opens them (the `exec` verb) and ends them all. */
export class ExecSessions {
  readonly #options: ExecSessionsOptions;
  readonly #open = new Map<string, OpenSession>();
  /** Admitted, their command not started yet: they hold their place meanwhile. */
  readonly #starting = new Map<string, OpenExec>();

  constructor(options: ExecSessionsOptions) {
    this.#options = options;
  }

  /** Sessions open now. */
  get size(): number {
    return this.#open.size;
  }

  /**
   * Admits `request` from `principal`, starts its command and streams it in a session.
   * @throws {CommandRefused} naming why the device declines (switched off, no such container,
   *   an interactive session already open)
   */
  async open(request: ExecRequest, principal: string): Promise<ExecResult> {
    const o = this.#options;
    const { sessionId } = request;
    if (this.#open.has(sessionId) || this.#starting.has(sessionId)) {
      throw new CommandRefused(`session ${sessionId} is already open`);
    }
    const open = [...this.#open.values(), ...this.#starting.values()];
    const admission = admitExec(o.deviceId, request, o.policy, open);
    if ("refuse" in admission) throw new CommandRefused(admission.refuse);
    const other = admission.takeOver && this.#open.get(admission.takeOver.sessionId);
    if (admission.takeOver && !other) {
      throw new CommandRefused(
        `the interactive session of ${admission.takeOver.principal} is starting; try again`,
      );
    }
    const slot = { sessionId, principal, tty: request.tty ?? false };
    this.#starting.set(sessionId, slot);
    let process: ExecProcess;
    let name: string;
    try {
      const chosen = await this.#target(request);
      name = chosen.name;
      if (other) {
        other.session.tell("notice", {
          message: `${principal} took over this device's interactive session (--force)`,
        });
        await other.session.end("taken-over", `${principal} took the interactive session over`);
      }
      process = await o.runtime.exec(chosen.target, {
        command: request.command,
        tty: request.tty ?? false,
        stdin: request.stdin ?? false,
        size: request.size,
      });
    } finally {
      this.#starting.delete(sessionId);
    }
    const session = new Session(o, {
      principal,
      sessionId: request.sessionId,
      requestId: request.requestId,
      verb: "exec",
      arguments: { ...auditArguments(request), ...execAuditArguments(request) },
    }, {
      credit: request.credit,
      maxBytes: o.maxBytes ?? EXEC_MAX_BYTES,
      onResize: (size) => this.#resize(process, size),
    });
    this.#open.set(sessionId, { ...slot, session });
    const stopStdin = request.stdin
      ? this.#acceptStdin(session, process, principal, request.sessionId)
      : undefined;
    void session.done.then(async () => {
      stopStdin?.();
      this.#open.delete(request.sessionId);
      try {
        await process.close();
      } catch (error) {
        o.log.warn(
          `Could not let go of the command of session ${request.sessionId}: ${
            (error as Error).message
          }`,
        );
      }
    });
    void this.#pipeOutput(session, process);
    return {
      sessionId: request.sessionId,
      target: name,
      stdinCredit: request.stdin ? STDIN_WINDOW : 0,
      ...(admission.takeOver ? { tookOver: admission.takeOver.sessionId } : {}),
    };
  }

  /**
   * Removes the host shell containers of sessions a stopped agent could not end (a power
   * cut); a failure is logged: they are left for the next start.
   */
  async removeLeftovers(): Promise<void> {
    const o = this.#options;
    try {
      await o.runtime.removeHostShells(o.deviceId);
    } catch (error) {
      o.log.warn(
        `Could not remove the host shells of earlier sessions: ${(error as Error).message}`,
      );
    }
  }

  /** Ends every open session with `reason` and waits for their audit records. */
  async endAll(reason: SessionEndReason, message: string): Promise<void> {
    await Promise.all([...this.#open.values()].map((s) => s.session.end(reason, message)));
  }

  /** Where `request` runs: the host, or the one container of its deployment (and service). */
  async #target(request: ExecRequest): Promise<{ target: ExecTarget; name: string }> {
    const o = this.#options;
    if (request.host) {
      return {
        target: { host: { deviceId: o.deviceId, sessionId: request.sessionId } },
        name: "host",
      };
    }
    const chosen = execContainer(await o.runtime.listManaged(o.deviceId), {
      namespace: request.namespace!,
      deployment: request.deployment!,
      service: request.service,
    });
    if ("problem" in chosen) throw new CommandRefused(chosen.problem);
    return {
      target: { containerId: chosen.containerId },
      name: `${request.deployment}/${chosen.service}`,
    };
  }

  #resize(process: ExecProcess, size: TerminalSize): void {
    process.resize(size).catch((error) =>
      this.#options.log.debug(`Could not resize an exec's terminal: ${error.message}`)
    );
  }

  /**
   * Writes what comes on `in` into the command, in order, granting more as it is written; a
   * requester that sends beyond its grant ends the session (the broker cannot hold it back).
   */
  #acceptStdin(
    session: Session,
    process: ExecProcess,
    principal: string,
    sessionId: string,
  ): () => void {
    const o = this.#options;
    let granted = STDIN_WINDOW;
    let received = 0;
    let written = 0;
    let writes = Promise.resolve();
    const fail = (error: Error) => {
      if (!session.ended) void session.end("failed", `writing stdin failed: ${error.message}`);
    };
    const subject = sessionSubject(o.deviceId, principal, sessionId, "in");
    return o.transport.listen(subject, (data, frame) => {
      if (session.ended) return;
      if (frame === "eof") {
        writes = writes.then(() => process.closeStdin()).catch(fail);
        return;
      }
      if (frame !== undefined) return; // a newer requester's frame
      received += data.length;
      if (received > granted) {
        void session.end(
          "failed",
          `the requester sent stdin beyond its credit of ${granted} bytes`,
        );
        return;
      }
      writes = writes.then(async () => {
        await process.write(data);
        written += data.length;
        // Grant in steps of half a window, not per write.
        if (written + STDIN_WINDOW - granted >= STDIN_WINDOW / 2) {
          granted = written + STDIN_WINDOW;
          session.tell("credit", { upTo: granted });
        }
      }).catch(fail);
    });
  }

  /** Sends the command's output as the credit allows, then how it exited. */
  async #pipeOutput(session: Session, process: ExecProcess): Promise<void> {
    const reader = process.output.getReader();
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        if (!await session.push(pieces(value), value.stream)) return;
      }
      const exitCode = await process.exitCode();
      session.sourcesEnded(
        exitCode === undefined
          ? { reason: "exited", message: "the command ended; Podman did not say how" }
          : { reason: "exited", message: `the command exited with code ${exitCode}`, exitCode },
      );
    } catch (error) {
      if (!session.ended) {
        void session.end("failed", `running the command failed: ${(error as Error).message}`);
      }
    } finally {
      void reader.cancel().catch((error) =>
        this.#options.log.debug(`The output of an exec ended with: ${error.message}`)
      );
    }
  }
}

/** A chunk of output cut to fit frames: a frame never splits one piece. */
function pieces(frame: DataFrame): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < frame.data.length; at += MAX_FRAME_BYTES) {
    out.push(frame.data.subarray(at, at + MAX_FRAME_BYTES));
  }
  return out;
}
