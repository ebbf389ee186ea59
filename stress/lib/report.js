// The markdown report of a stress run: one table per scenario, every check with
// what was expected and what was counted.
export function buildReport ({ results, machine, git, command, seconds, load }) {
  const lines = [
    '# Stress results',
    '',
    `Command: \`${command}\` · commit ${git} · ${new Date().toISOString()} · ${seconds.toFixed(1)} s in all`,
    `Machine: ${machine.nproc} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, ${machine.kernel}, Node ${machine.node}, ws ${machine.versions.ws}, fastify ${machine.versions.fastify}; load average ${load.start} at start, ${load.end} at end`,
    '',
    `**${results.every((result) => result.ok) ? 'All checks passed' : 'FAILED'}** (${results.filter((result) => result.ok).length}/${results.length} scenarios)`,
    ''
  ]
  for (const result of results) {
    lines.push(`## ${result.name}: ${result.ok ? 'pass' : 'FAIL'} (${result.seconds.toFixed(1)} s)`, '')
    lines.push('| check | expected | counted | |', '|---|---|---|---|')
    for (const row of result.rows) lines.push(`| ${row.what} | ${cell(row.expected)} | ${cell(row.actual)} | ${row.ok ? 'ok' : '**FAIL**'} |`)
    const figures = Object.entries(result.figures)
    if (figures.length > 0) lines.push('', `Figures: ${figures.map(([key, value]) => `${key} ${cell(JSON.stringify(value))}`).join(' · ')}`)
    lines.push('')
  }
  return lines.join('\n')
}

const cell = (text) => String(text).replaceAll('|', '\\|').slice(0, 300)
