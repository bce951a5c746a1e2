#!/usr/bin/env node
// tunnelbyte: the user CLI (see src/cli/README.md for commands, environment and exit codes).
import { processIo } from './io.js';
import { run } from './program.js';

process.exitCode = await run(process.argv.slice(2), processIo());
