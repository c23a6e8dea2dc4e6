// The spike scenario of ../scenarios.json (see ../README.md):
//   k6 run loadtest/k6/spike.js            full size
//   SMOKE=1 k6 run loadtest/k6/spike.js    seconds
import { k6Options, setupFor, iterationFor } from './lib.js';

const defs = JSON.parse(open('../scenarios.json'));

export const options = k6Options(defs, 'spike');
export const setup = () => setupFor(defs, 'spike');
export default iterationFor(defs, 'spike');
