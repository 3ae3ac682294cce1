/** Number formats shared by the demo's terminal output, report and conclusions. */

export function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Milliseconds with 2 significant decimals below 10, 1 below 100, none above. */
export function ms(n: number): string {
  return n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0);
}

export function ratio(n: number): string {
  return `${n.toFixed(2)}×`;
}

export function mb(bytes: number): string {
  return `${int(bytes / 2 ** 20)} MB`;
}

export function seconds(n: number): string {
  return n < 10 ? `${n.toFixed(2)} s` : `${n.toFixed(1)} s`;
}

export function pct(n: number): string {
  return `${(n * 100).toFixed(0)} %`;
}
