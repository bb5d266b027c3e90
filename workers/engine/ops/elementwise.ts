/** Element-wise arithmetic, comparisons and activations (numpy broadcasting, as ONNX specifies). */
import * as tf from '@tensorflow/tfjs';
import { KernelTable, OpContext, OpKernel, attrFloat, attrString, required } from './kernel';

function unary(fn: (x: tf.Tensor) => tf.Tensor): OpKernel {
  return (inputs, ctx) => [fn(required(inputs, 0, ctx))];
}

function binary(fn: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor): OpKernel {
  return (inputs, ctx) => [fn(required(inputs, 0, ctx), required(inputs, 1, ctx))];
}

/** Variadic Max/Min/Sum fold their inputs pairwise. */
function variadic(fn: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor): OpKernel {
  return (inputs, ctx) => {
    const present = inputs.filter((t): t is tf.Tensor => t !== undefined);
    if (present.length === 0) required(inputs, 0, ctx);
    return [present.reduce((acc, t) => fn(acc, t))];
  };
}

/** ONNX integer division truncates toward zero; tfjs's int32 div floors. */
function divide(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (a.dtype === 'int32' && b.dtype === 'int32') {
    return tf.tidy(() => tf.cast(tf.div(tf.cast(a, 'float32'), tf.cast(b, 'float32')), 'int32'));
  }
  return tf.div(a, b);
}

function pow(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  // x^2 (LayerNorm variance at opset < 17) as a product keeps gradients defined at x = 0 and is faster.
  if (b.size === 1 && b.dtype === 'float32' && b.dataSync()[0] === 2) return tf.mul(a, a);
  return a.dtype === b.dtype ? tf.pow(a, b) : tf.cast(tf.pow(tf.cast(a, 'float32'), tf.cast(b, 'float32')), a.dtype);
}

function mod(inputs: (tf.Tensor | undefined)[], ctx: OpContext): tf.Tensor[] {
  const a = required(inputs, 0, ctx);
  const b = required(inputs, 1, ctx);
  if (attrFloat(ctx.node, 'fmod', 0) === 1) {
    // C fmod: the remainder of the truncated quotient, carrying the dividend's sign.
    const quotient = tf.cast(tf.div(tf.cast(a, 'float32'), tf.cast(b, 'float32')), 'int32');
    return [tf.sub(a, tf.mul(tf.cast(quotient, a.dtype), b))];
  }
  return [tf.mod(a, b)];
}

function clip(inputs: (tf.Tensor | undefined)[], ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const bound = (index: number, attr: string): number | undefined => {
    if (ctx.opset < 11) return ctx.node.attributes.has(attr) ? attrFloat(ctx.node, attr, 0) : undefined;
    const t = inputs[index];
    return t ? t.dataSync()[0] : undefined;
  };
  const lo = bound(1, 'min');
  const hi = bound(2, 'max');
  // A missing bound is no bound: no sentinel that an int32 input could not represent.
  if (lo !== undefined && hi !== undefined) return [tf.clipByValue(x, lo, hi)];
  if (lo !== undefined) return [tf.maximum(x, tf.scalar(lo, x.dtype))];
  if (hi !== undefined) return [tf.minimum(x, tf.scalar(hi, x.dtype))];
  return [x];
}

function gelu(inputs: (tf.Tensor | undefined)[], ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  if (attrString(ctx.node, 'approximate', 'none') === 'tanh') {
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return [tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)))];
  }
  return [tf.mul(tf.mul(0.5, x), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))))];
}

function where(inputs: (tf.Tensor | undefined)[], ctx: OpContext): tf.Tensor[] {
  const cond = tf.cast(required(inputs, 0, ctx), 'bool');
  const a = required(inputs, 1, ctx);
  const b = required(inputs, 2, ctx);
  const shape = tf.backend_util.assertAndGetBroadcastShape(tf.backend_util.assertAndGetBroadcastShape(cond.shape, a.shape), b.shape);
  return [tf.where(tf.broadcastTo(cond, shape), tf.broadcastTo(a, shape), tf.broadcastTo(b, shape))];
}

function hardSigmoid(inputs: (tf.Tensor | undefined)[], ctx: OpContext): tf.Tensor[] {
  const alpha = attrFloat(ctx.node, 'alpha', 0.2);
  const beta = attrFloat(ctx.node, 'beta', 0.5);
  return [tf.clipByValue(tf.add(tf.mul(required(inputs, 0, ctx), alpha), beta), 0, 1)];
}

function leakyRelu(inputs: (tf.Tensor | undefined)[], ctx: OpContext): tf.Tensor[] {
  return [tf.leakyRelu(required(inputs, 0, ctx), attrFloat(ctx.node, 'alpha', 0.01))];
}

function logical(fn: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor): OpKernel {
  return binary((a, b) => fn(tf.cast(a, 'bool'), tf.cast(b, 'bool')));
}

export const elementwiseKernels: KernelTable = {
  Add: binary(tf.add),
  Sub: binary(tf.sub),
  Mul: binary(tf.mul),
  Div: binary(divide),
  Pow: binary(pow),
  Mod: mod,
  Max: variadic(tf.maximum),
  Min: variadic(tf.minimum),
  Sum: variadic(tf.add),
  Sqrt: unary(tf.sqrt),
  Reciprocal: unary(tf.reciprocal),
  Neg: unary(tf.neg),
  Abs: unary(tf.abs),
  Exp: unary(tf.exp),
  Log: unary(tf.log),
  Floor: unary(tf.floor),
  Ceil: unary(tf.ceil),
  Round: unary(tf.round),
  Sign: unary(tf.sign),
  Erf: unary(tf.erf),
  Tanh: unary(tf.tanh),
  Relu: unary(tf.relu),
  Sigmoid: unary(tf.sigmoid),
  Sin: unary(tf.sin),
  Cos: unary(tf.cos),
  Softplus: unary(tf.softplus),
  HardSigmoid: hardSigmoid,
  LeakyRelu: leakyRelu,
  Gelu: gelu,
  Clip: clip,
  Equal: binary(tf.equal),
  Less: binary(tf.less),
  LessOrEqual: binary(tf.lessEqual),
  Greater: binary(tf.greater),
  GreaterOrEqual: binary(tf.greaterEqual),
  Not: unary((x) => tf.logicalNot(tf.cast(x, 'bool'))),
  And: logical(tf.logicalAnd),
  Or: logical(tf.logicalOr),
  Xor: logical(tf.logicalXor),
  Where: where,
  IsNaN: unary(tf.isNaN),
};
