// Runs the organization sweep's state machine locally, for orgflow_test.go:
// aws-local-stepfunctions (pinned in package.json) runs its states, and this
// driver runs what that interpreter does not, a Map state in Distributed
// mode, the way Step Functions documents it.
//
//   node run-org-sweep.mjs --definition DEFINITION.json --tasks STATE[,STATE…]
//        --function-arn ARN --urls INVOKE_URL[,INVOKE_URL…]
//        [--s3 http://127.0.0.1:PORT] [--state-machine-arn ARN] [--execution NAME]
//        [--result-file-items N]
//
// Task states (--tasks: arn:aws:states:::lambda:invoke). Each is overridden
// to do what the Step Functions Lambda integration does: invoke FunctionName
// synchronously with Payload and answer {"Payload": <response>, "StatusCode":
// 200, …}; a function error becomes the task's error, named after the
// errorType, with the error response as its Cause
// (https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html).
// The function runs under the Lambda Runtime Interface Emulator, which serves
// one invocation at a time, so each invocation takes a free RIE from --urls,
// waiting for one when all are busy, as Lambda runs concurrent invocations in
// separate execution environments.
//
// Distributed Map states (ItemProcessor.ProcessorConfig.Mode DISTRIBUTED,
// https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html)
// are replaced, before the definition is handed to the interpreter, by a
// Task state with the same InputPath, ResultSelector, ResultPath, OutputPath
// and transition, whose local handler does what a Map Run does:
//   - ItemReader (arn:aws:states:::s3:getObject, ReaderConfig InputType
//     JSON): GetObject of Parameters' Bucket and Key from the S3 at --s3
//     (moto's server: path-style requests, unsigned), a JSON array
//     of items (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html);
//   - ItemSelector: each item's input, with $$.Map.Item.Value, Index and
//     Source in the Context object;
//   - ItemProcessor: each item runs as a child workflow execution of its own
//     (its own interpreter run, Context and history), at most MaxConcurrency
//     at once (0 or none: 10,000, the hard quota);
//   - ToleratedFailurePercentage / ToleratedFailureCount: the Map Run fails
//     with States.ExceedToleratedFailureThreshold when more children fail
//     (default 0: any failure);
//   - ResultWriter (arn:aws:states:::s3:putObject, Parameters Bucket and
//     Prefix): the children's executions grouped by status into
//     <Prefix>/<Map Run ID>/SUCCEEDED_n.json, FAILED_n.json and PENDING_n.json
//     (JSON arrays of {ExecutionArn, Input, InputDetails, Name, Output,
//     OutputDetails, RedriveCount, RedriveStatus, RedriveStatusReason,
//     StartDate, StateMachineArn, Status, StopDate}, Error and Cause for a
//     failed one, no Output), and manifest.json ({DestinationBucket,
//     MapRunArn, ResultFiles: {FAILED, PENDING, SUCCEEDED: [{Key, Size}]}});
//     the state's result is {MapRunArn, ResultWriterDetails: {Bucket, Key}},
//     Key the manifest's
//     (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html).
//     Step Functions starts a new result file past 5 GB; --result-file-items
//     starts one every N executions instead, so a test can give a reader
//     several files.
// Parameters' values with ".$" take JSONPath reference paths ($.a.b or
// $$.a.b) here; anything else (an intrinsic function) is refused rather than
// guessed.
//
// Prints one JSON line on stdout: {"output", "invocations", "children",
// "maxChildren" (most child executions running at once), "maxEvents" (the
// longest child history)}; exits 1 if the execution fails.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { StateMachine } from 'aws-local-stepfunctions';

const { values: opts } = parseArgs({
  options: {
    definition: { type: 'string' },
    tasks: { type: 'string' },
    'function-arn': { type: 'string' },
    urls: { type: 'string' },
    s3: { type: 'string' },
    'state-machine-arn': { type: 'string', default: 'arn:aws:states:us-east-1:012345678912:stateMachine:kms-rotator-org-sweep' },
    execution: { type: 'string' },
    'result-file-items': { type: 'string' },
  },
});
if (!opts.definition || !opts.tasks || !opts['function-arn'] || !opts.urls) {
  console.error('usage: run-org-sweep.mjs --definition F --tasks A,B --function-arn ARN --urls U1,U2 [--s3 URL] [--state-machine-arn ARN] [--execution NAME] [--result-file-items N]');
  process.exit(2);
}
const definition = JSON.parse(readFileSync(opts.definition, 'utf8'));
const functionARN = opts['function-arn'];
const stateMachineARN = opts['state-machine-arn'];
const resultFileItems = Number(opts['result-file-items'] ?? 0);
// Step Functions' own split of a result file
// (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html).
const resultFileBytes = 5 * 1024 ** 3;
// The most child executions a Map Run runs in parallel
// (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).
const maxParallelChildren = 10000;

// A pool of RIEs: invoke() waits for a free one.
const free = opts.urls.split(',');
const waiting = [];
async function withRIE(fn) {
  const url = free.length ? free.pop() : await new Promise((resolve) => waiting.push(resolve));
  try {
    return await fn(url);
  } finally {
    const next = waiting.shift();
    if (next) next(url);
    else free.push(url);
  }
}

let invocations = 0;
async function lambdaInvoke(input) {
  if (input.FunctionName !== functionARN) {
    throw new Error(`Task invokes ${JSON.stringify(input.FunctionName)}, want ${functionARN}`);
  }
  invocations++;
  const body = await withRIE(async (url) => {
    const res = await fetch(url, { method: 'POST', body: JSON.stringify(input.Payload) });
    if (res.status !== 200) {
      const err = new Error(`RIE answered HTTP ${res.status}: ${await res.text()}`);
      err.name = 'Lambda.ServiceException';
      throw err;
    }
    return res.json();
  });
  // The RIE answers a handler error with HTTP 200 and the error document.
  if (body && typeof body === 'object' && 'errorType' in body && 'errorMessage' in body && !('runId' in body)) {
    const err = new Error(JSON.stringify(body));
    err.name = body.errorType;
    throw err;
  }
  return { ExecutedVersion: '$LATEST', Payload: body, StatusCode: 200 };
}

// fail is an error of the Step Functions kind name (States.…).
function fail(name, message) {
  const err = new Error(message);
  err.name = name;
  return err;
}

// path reads a reference path ($.a.b, $$.a.b, $ or $$) from input and the
// Context object.
function path(expr, input, context) {
  const m = /^(\$\$?)((?:\.[A-Za-z0-9_-]+)*)$/.exec(expr);
  if (!m) throw fail('States.Runtime', `the driver reads only plain reference paths, not ${JSON.stringify(expr)}`);
  let v = m[1] === '$$' ? context : input;
  for (const part of m[2].split('.').slice(1)) {
    if (v === null || typeof v !== 'object' || !(part in v)) {
      throw fail('States.Runtime', `the JSONPath ${expr} could not be found in the input`);
    }
    v = v[part];
  }
  return v;
}

// template resolves a payload template (Parameters, ItemSelector): a key
// ending in ".$" takes the value its path selects.
function template(t, input, context) {
  if (Array.isArray(t)) return t.map((v) => template(v, input, context));
  if (t === null || typeof t !== 'object') return t;
  const out = {};
  for (const [k, v] of Object.entries(t)) {
    if (k.endsWith('.$')) out[k.slice(0, -2)] = path(v, input, context);
    else out[k] = template(v, input, context);
  }
  return out;
}

// S3 of moto's server, path-style.
function s3URL(bucket, key) {
  if (!opts.s3) throw fail('States.Runtime', 'the definition reads or writes S3 and no --s3 was given');
  return `${opts.s3}/${encodeURIComponent(bucket)}/${key.split('/').map(encodeURIComponent).join('/')}`;
}
// moto's server checks no signature, but refuses an anonymous GetObject of
// a private bucket as S3 does: the requests name the account's credentials
// (the harness's fake ones) in an Authorization header.
const s3Auth = { authorization: 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261207/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0' };
async function s3Get(bucket, key, errorName) {
  const res = await fetch(s3URL(bucket, key), { headers: s3Auth });
  if (res.status !== 200) throw fail(errorName, `GetObject s3://${bucket}/${key}: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return res.text();
}
async function s3Put(bucket, key, body, errorName) {
  const res = await fetch(s3URL(bucket, key), { method: 'PUT', body, headers: { ...s3Auth, 'content-type': 'application/json' } });
  if (res.status !== 200) throw fail(errorName, `PutObject s3://${bucket}/${key}: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
}

const stats = { children: 0, running: 0, maxChildren: 0, maxEvents: 0 };
const smName = stateMachineARN.split(':stateMachine:')[1];

// distributedMap is the local handler standing in for one Distributed Map
// state: input is the state's effective input.
function distributedMap(stateName, state, context) {
  const proc = state.ItemProcessor;
  if (proc.ProcessorConfig.ExecutionType !== 'STANDARD' && proc.ProcessorConfig.ExecutionType !== 'EXPRESS') {
    throw new Error(`${stateName}: ExecutionType ${proc.ProcessorConfig.ExecutionType}`);
  }
  const child = new StateMachine({ StartAt: proc.StartAt, States: proc.States });
  const label = state.Label ?? randomUUID().slice(0, 8);
  return async (input) => {
    let items;
    let source = 'STATE_DATA';
    const reader = state.ItemReader;
    if (reader) {
      if (!/^arn:[a-z-]+:states:::s3:getObject$/.test(reader.Resource) || reader.ReaderConfig?.InputType !== 'JSON') {
        throw new Error(`${stateName}: the driver reads JSON files with s3:getObject only`);
      }
      const p = template(reader.Parameters, input, context);
      source = `s3://${p.Bucket}/${p.Key}`;
      try {
        items = JSON.parse(await s3Get(p.Bucket, p.Key, 'States.ItemReaderFailed'));
      } catch (err) {
        if (err.name === 'SyntaxError') throw fail('States.ItemReaderFailed', `${source} is not JSON: ${err.message}`);
        throw err;
      }
    } else {
      items = path(state.ItemsPath ?? '$', input, context);
    }
    if (!Array.isArray(items)) throw fail('States.ItemReaderFailed', `${source}: the items are not a JSON array`);

    const mapRunID = randomUUID();
    const mapRunARN = `${stateMachineARN.replace(':stateMachine:', ':mapRun:')}/${label}:${mapRunID}`;
    const childMachineARN = `${stateMachineARN}/${label}`;
    const limit = state.MaxConcurrency ? Math.min(state.MaxConcurrency, maxParallelChildren) : maxParallelChildren;
    const records = new Array(items.length);
    let next = 0;
    async function runChild(i) {
      const name = randomUUID();
      const arn = `${stateMachineARN.replace(':stateMachine:', ':execution:')}/${label}:${name}`;
      const childInput = state.ItemSelector
        ? template(state.ItemSelector, input, { ...context, Map: { Item: { Index: i, Value: items[i], Source: source } } })
        : items[i];
      const start = new Date();
      const execution = child.run(childInput, {
        overrides: { taskResourceLocalHandlers: handlers },
        context: { Execution: { Id: arn, Name: name, Input: childInput, StartTime: start.toISOString() }, StateMachine: { Id: childMachineARN, Name: `${smName}/${label}` } },
      });
      let events = 0;
      const counting = (async () => {
        for await (const _ of execution.eventLogs) events++;
      })();
      const rec = {
        ExecutionArn: arn, Input: JSON.stringify(childInput), InputDetails: { Included: true }, Name: name,
        RedriveCount: 0, StartDate: start.toISOString(), StateMachineArn: childMachineARN,
      };
      try {
        const output = await execution.result;
        Object.assign(rec, {
          Output: JSON.stringify(output), OutputDetails: { Included: true },
          RedriveStatus: 'NOT_REDRIVABLE', RedriveStatusReason: 'Execution is SUCCEEDED and cannot be redriven', Status: 'SUCCEEDED',
        });
      } catch (err) {
        // The interpreter wraps the state's error (ExecutionError, cause).
        const e = err.cause ?? err;
        Object.assign(rec, { Error: e.name, Cause: e.message, RedriveStatus: 'REDRIVABLE', Status: 'FAILED' });
      }
      await counting;
      stats.maxEvents = Math.max(stats.maxEvents, events);
      rec.StopDate = new Date().toISOString();
      records[i] = rec;
    }
    async function worker() {
      while (next < items.length) {
        const i = next++;
        stats.running++;
        stats.children++;
        stats.maxChildren = Math.max(stats.maxChildren, stats.running);
        try {
          await runChild(i);
        } finally {
          stats.running--;
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));

    const failed = records.filter((r) => r.Status !== 'SUCCEEDED').length;
    const pct = state.ToleratedFailurePercentage ?? 0;
    const exceeded = items.length > 0 &&
      ((failed * 100) / items.length > pct || (state.ToleratedFailureCount !== undefined && failed > state.ToleratedFailureCount));

    let result;
    const writer = state.ResultWriter;
    if (writer) {
      if (!/^arn:[a-z-]+:states:::s3:putObject$/.test(writer.Resource)) throw new Error(`${stateName}: ResultWriter ${writer.Resource}`);
      const p = template(writer.Parameters, input, context);
      const dir = `${p.Prefix ? `${p.Prefix}/` : ''}${mapRunID}/`;
      const files = { FAILED: [], PENDING: [], SUCCEEDED: [] };
      for (const status of ['SUCCEEDED', 'FAILED', 'PENDING']) {
        const group = records.filter((r) => (status === 'SUCCEEDED' ? r.Status === 'SUCCEEDED' : status === 'FAILED' ? r.Status !== 'SUCCEEDED' : false));
        let part = [];
        let bytes = 2;
        const flush = async () => {
          const key = `${dir}${status}_${files[status].length}.json`;
          const body = JSON.stringify(part);
          await s3Put(p.Bucket, key, body, 'States.ResultWriterFailed');
          files[status].push({ Key: key, Size: Buffer.byteLength(body) });
          part = [];
          bytes = 2;
        };
        for (const r of group) {
          const size = Buffer.byteLength(JSON.stringify(r)) + 1;
          if (part.length > 0 && (bytes + size > resultFileBytes || (resultFileItems > 0 && part.length >= resultFileItems))) await flush();
          part.push(r);
          bytes += size;
        }
        if (part.length > 0) await flush();
      }
      const manifestKey = `${dir}manifest.json`;
      await s3Put(p.Bucket, manifestKey, JSON.stringify({ DestinationBucket: p.Bucket, MapRunArn: mapRunARN, ResultFiles: files }), 'States.ResultWriterFailed');
      result = { MapRunArn: mapRunARN, ResultWriterDetails: { Bucket: p.Bucket, Key: manifestKey } };
    } else {
      result = records.map((r) => (r.Status === 'SUCCEEDED' ? JSON.parse(r.Output) : r));
    }
    if (exceeded) {
      throw fail('States.ExceedToleratedFailureThreshold', `${failed} of ${items.length} child executions failed, over ${pct}%`);
    }
    return result;
  };
}

const executionName = opts.execution ?? randomUUID();
const context = {
  Execution: {
    Id: `${stateMachineARN.replace(':stateMachine:', ':execution:')}:${executionName}`,
    Input: {},
    Name: executionName,
    StartTime: new Date().toISOString(),
  },
  StateMachine: { Id: stateMachineARN, Name: smName },
};

const handlers = Object.fromEntries(opts.tasks.split(',').map((state) => [state, lambdaInvoke]));
const parent = { ...definition, States: { ...definition.States } };
for (const [name, st] of Object.entries(definition.States)) {
  if (st.Type !== 'Map' || st.ItemProcessor?.ProcessorConfig?.Mode !== 'DISTRIBUTED') continue;
  // A Task state times out after 60 s unless told otherwise (the States
  // Language's default); a Map state has no timeout of its own, so the
  // stand-in gets a day, far more than a local run takes (Node's timers
  // stop at 24.8 days).
  const stand = { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:012345678912:function:distributed-map-driver', TimeoutSeconds: 24 * 3600 };
  for (const k of ['Comment', 'InputPath', 'OutputPath', 'ResultPath', 'ResultSelector', 'Next', 'End', 'Retry', 'Catch']) {
    if (k in st) stand[k] = st[k];
  }
  parent.States[name] = stand;
  handlers[name] = distributedMap(name, st, context);
}

const machine = new StateMachine(parent);
const execution = machine.run({}, { overrides: { taskResourceLocalHandlers: handlers }, context });
try {
  const output = await execution.result;
  process.stdout.write(JSON.stringify({ output, invocations, children: stats.children, maxChildren: stats.maxChildren, maxEvents: stats.maxEvents }) + '\n');
} catch (err) {
  const e = err.cause ?? err;
  console.error(`execution failed: ${e.name}: ${e.message}`);
  process.exit(1);
}
