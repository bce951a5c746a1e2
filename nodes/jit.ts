// Imported first by the node's entry point, before any other module's code runs. V8 starts every function
// in its bytecode interpreter and compiles it only once hot; a node's first packets, and an idle node's
// occasional ones (a ping, a keepalive), would be carried by interpreted code. Sparkplug, V8's
// non-optimizing baseline compiler, compiles each function to machine code at its first call instead:
// scripts/bench-tunnel's idle ping through the node went from 0.85 to 0.70 ms (median) with it.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--always-sparkplug');
