// The browse scenario of ../scenarios.json (see ../README.md):
//   k6 run loadtest/k6/browse.js            full size
//   SMOKE=1 k6 run loadtest/k6/browse.js    seconds
import { k6Options, setupFor, iterationFor } from './lib.js';

const defs = JSON.parse(open('../scenarios.json'));

export const options = k6Options(defs, 'browse');
export const setup = () => setupFor(defs, 'browse');
export default iterationFor(defs, 'browse');
