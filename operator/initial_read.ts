/**
 * The operator's cold start (DESIGN.md §4): it writes nothing until it has read every input
 * once, so a restart converges without rewriting unchanged keys. Its controllers ask this
 * whether that first complete read is done.
 */
export class InitialRead {
  readonly #pending: Set<string>;

  /** @param inputs names of what must be read once: the source, each bucket */
  constructor(inputs: Iterable<string>) {
    this.#pending = new Set(inputs);
  }

  /**
   * Marks `input` as read once.
   * @returns true exactly when this completes the first read of every input
   */
  done(input: string): boolean {
    return this.#pending.delete(input) && this.#pending.size === 0;
  }

  /** Whether every input has been read once. */
  get complete(): boolean {
    return this.#pending.size === 0;
  }
}
