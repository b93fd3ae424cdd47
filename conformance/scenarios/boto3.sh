# boto3 (current, from PyPI) over HTTP and, when the server runs TLS, HTTPS.
source "$(dirname "$0")/../lib.sh"
PYTHON=${PORTICO_TEST_PYTHON:-python3}
"$PYTHON" "$(dirname "$0")/boto3_sdk.py"
