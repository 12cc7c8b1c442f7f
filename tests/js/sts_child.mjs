// A JavaScript SDK v3 child of `stsvend exec`: it resolves credentials through the SDK's default
// chain, as any tool would. Each round a new client resolves them anew, and a client made once
// keeps working; prints what each round saw (access key ids and ARNs, never a secret).
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";

const rounds = Number(process.argv[2]);
const pauseMs = Number(process.argv[3]);
const endpoint = process.env.AWS_ENDPOINT_URL;
const longLived = new STSClient({ endpoint });
const seen = [];
for (let round = 0; round < rounds; round += 1) {
  const fresh = new STSClient({ endpoint });
  const identity = await fresh.send(new GetCallerIdentityCommand({}));
  const credentials = await fresh.config.credentials();
  const kept = await longLived.send(new GetCallerIdentityCommand({}));
  seen.push({ accessKeyId: credentials.accessKeyId, arn: identity.Arn, longLivedArn: kept.Arn });
  await new Promise((resolve) => setTimeout(resolve, pauseMs));
}
console.log(JSON.stringify(seen));
