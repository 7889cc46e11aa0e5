"""Validates a --cli-input-json file as the AWS CLI does before it sends it:
botocore's own service model and parameter validator, offline (no client is
built, nothing is sent). Usage: validate_input.py SERVICE OPERATION FILE.
Prints what the CLI would refuse and exits 1, or exits 0."""

import json
import sys

import botocore.session
from botocore.validate import ParamValidator

service, operation, path = sys.argv[1:4]
model = botocore.session.get_session().get_service_model(service)
shape = model.operation_model(operation).input_shape
with open(path) as f:
    params = json.load(f)
report = ParamValidator().validate(params, shape)
if report.has_errors():
    print(report.generate_report())
    sys.exit(1)
