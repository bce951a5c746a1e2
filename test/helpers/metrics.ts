// Reading Prometheus text exposition in tests.

/** The value of `series` (a name with its labels, as exposed) in `text`, or undefined when absent. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
