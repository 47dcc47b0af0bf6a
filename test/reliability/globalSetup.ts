/**
 * The full suite's global setup: a fresh results.json before the scenarios
 * record into it, and results.md rendered from it once they have all run.
 */
import { resetResults, writeResultsMd } from "./support/results.ts"

export default function setup(): () => void {
  resetResults()
  return writeResultsMd
}
