// The checkout scenario of ../scenarios.json (see ../README.md):
//   k6 run loadtest/k6/checkout.js            full size
//   SMOKE=1 k6 run loadtest/k6/checkout.js    seconds
import { k6Options, setupFor, iterationFor } from './lib.js';

const defs = JSON.parse(open('../scenarios.json'));

export const options = k6Options(defs, 'checkout');
export const setup = () => setupFor(defs, 'checkout');
export default iterationFor(defs, 'checkout');
