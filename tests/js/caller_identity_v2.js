// A JavaScript SDK v2 child of `stsvend exec` (the SDK Serverless Framework v3 and many Node tools
// still use): its default credential chain, as any such tool resolves it. Prints the caller's ARN
// and the access key id it used, never a secret.
const AWS = require("aws-sdk");

const sts = new AWS.STS({ endpoint: process.env.AWS_ENDPOINT_URL, region: process.env.AWS_REGION });
sts.getCallerIdentity({}, (error, identity) => {
  if (error) {
    console.error(`GetCallerIdentity failed: ${error.code}: ${error.message}`);
    process.exit(9);
  }
  const credentials = sts.config.credentials;
  console.log(JSON.stringify({
    arn: identity.Arn,
    accessKeyId: credentials.accessKeyId,
    provider: credentials.constructor.name,
  }));
});
