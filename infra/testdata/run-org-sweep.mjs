// Runs the organization sweep's state machine locally with
// aws-local-stepfunctions (pinned in package.json), for orgflow_test.go.
//
//   node run-org-sweep.mjs DEFINITION.json TASK_STATE[,TASK_STATE…] FUNCTION_ARN INVOKE_URL[,INVOKE_URL…]
//
// Each TASK_STATE Task (arn:aws:states:::lambda:invoke: the state that
// resolves the targets, and the one that sweeps a target) is overridden to
// do what the Step Functions Lambda integration does: invoke FunctionName
// synchronously with Payload and answer {"Payload": <response>, "StatusCode":
// 200, …}; a function error becomes the task's error, named after the
// errorType, with the error response as its Cause
// (https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html).
// The function runs under the Lambda Runtime Interface Emulator, which serves
// one invocation at a time, so each invocation takes a free RIE from the
// list. Prints the execution's output as one JSON line on stdout; exits 1 if
// the execution fails.
import { readFileSync } from 'node:fs';
import { StateMachine } from 'aws-local-stepfunctions';

const [definitionFile, taskStates, functionARN, urls] = process.argv.slice(2);
if (!definitionFile || !taskStates || !functionARN || !urls) {
  console.error('usage: run-org-sweep.mjs DEFINITION.json TASK_STATE[,TASK_STATE…] FUNCTION_ARN INVOKE_URL[,INVOKE_URL…]');
  process.exit(2);
}
const definition = JSON.parse(readFileSync(definitionFile, 'utf8'));

// A pool of RIEs: invoke() waits for a free one.
const free = urls.split(',');
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
    const res = await fetch(url, {
      method: 'POST',
      body: JSON.stringify(input.Payload),
    });
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

const machine = new StateMachine(definition);
const handlers = Object.fromEntries(taskStates.split(',').map((state) => [state, lambdaInvoke]));
const execution = machine.run({}, {
  overrides: { taskResourceLocalHandlers: handlers },
});
try {
  const output = await execution.result;
  process.stdout.write(JSON.stringify({ output, invocations }) + '\n');
} catch (err) {
  console.error(`execution failed: ${err.name}: ${err.message}`);
  process.exit(1);
}
