// A JavaScript SDK v3 client choosing its profile as tools do (AWS_PROFILE, the default chain):
// prints who it is, never a secret.
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";

const client = new STSClient({ endpoint: process.env.AWS_ENDPOINT_URL });
const identity = await client.send(new GetCallerIdentityCommand({}));
console.log(JSON.stringify({ arn: identity.Arn }));
