// The overload scenario of ../scenarios.json (see ../README.md):
//   k6 run loadtest/k6/overload.js            full size
//   SMOKE=1 k6 run loadtest/k6/overload.js    seconds
import { k6Options, setupFor, iterationFor } from './lib.js';

const defs = JSON.parse(open('../scenarios.json'));

export const options = k6Options(defs, 'overload');
export const setup = () => setupFor(defs, 'overload');
export default iterationFor(defs, 'overload');
