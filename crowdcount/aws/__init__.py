"""AWS: the SQS worker, S3 and DynamoDB storage, the local sandbox and deployment.

Every function takes an injected :class:`boto3.Session` or clients (see :mod:`crowdcount.aws.session`),
so the same code runs against AWS, the sandbox (moto's server) and moto's in-process mock.
"""
