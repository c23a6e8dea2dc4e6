// The soak scenario of ../scenarios.json (see ../README.md):
//   k6 run loadtest/k6/soak.js            full size
//   SMOKE=1 k6 run loadtest/k6/soak.js    seconds
import { k6Options, setupFor, iterationFor } from './lib.js';

const defs = JSON.parse(open('../scenarios.json'));

export const options = k6Options(defs, 'soak');
export const setup = () => setupFor(defs, 'soak');
export default iterationFor(defs, 'soak');
