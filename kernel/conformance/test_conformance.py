"""Jupyter's kernel conformance suite (python3-jupyter-kernel-test) with TypeScript samples.

Run from the package root after building and installing the kernelspec where Jupyter looks (JUPYTER_PATH):

    ATTNLAB_KERNEL=attnlab python3 -m unittest discover -s kernel/conformance -v

ATTNLAB_KERNEL names the kernelspec to test (default "attnlab"); "tslab" measures plain tslab with the same samples.
The suite's tests run for both; AttnlabKernelTests adds checks the suite leaves out.
"""
import os
import unittest

import jupyter_kernel_test as jkt

KERNEL = os.environ.get("ATTNLAB_KERNEL", "attnlab")


class TypeScriptKernelTests(jkt.KernelTests):
    kernel_name = KERNEL
    language_name = "typescript"
    file_extension = ".ts"

    code_hello_world = 'console.log("hello, world")'
    code_stderr = 'console.error("something went wrong")'

    completion_samples = [
        {"text": "const abcdefg = 1;\nabcde", "matches": {"abcdefg"}},
        {"text": "Math.ma", "matches": {"max"}},
    ]

    complete_code_samples = ["const x = 1;", 'console.log("hi")', "function f() { return 1; }"]
    incomplete_code_samples = ["function f() {", "const xs = [1,", "if (true) {\n  console.log(1);", "const s = `abc"]
    invalid_code_samples = ["const = 1;", "1 +* 2;", "let x = );"]

    code_generate_error = 'throw new Error("boom")'

    code_execute_result = [
        {"code": "1 + 2", "result": "3"},
        {"code": "[1, 2, 3].map((x) => x * 2)", "result": "[ 2, 4, 6 ]"},
        {"code": "({ a: 1 })", "result": "{ a: 1 }"},
    ]

    code_display_data = [
        {"code": 'import { display } from "tslab";\ndisplay.html("<b>bold</b>")', "mime": "text/html"},
    ]

    code_history_pattern = "1 + *"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "Math.max"


class AttnlabKernelTests(TypeScriptKernelTests):
    """The suite plus what it does not cover: rich results, the display protocol, compile errors, recovery."""

    code_clear_output = "import * as d from 'attnlab/display';\nd.clearOutput()"
    code_display_data = TypeScriptKernelTests.code_display_data + [
        {"code": "import * as d from 'attnlab/display';\nd.html('<b>bold</b>')", "mime": "text/html"},
    ]

    def run_cell(self, code, timeout=60):
        """Like execute_helper, without its 0.1 s limit between outputs (the first figure carries plotly.js, 5 MB)."""
        self.flush_channels()
        msg_id = self.kc.execute(code)
        reply = self.get_non_kernel_info_reply(timeout=timeout)
        jkt.validate_message(reply, "execute_reply", msg_id)
        outputs = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            jkt.validate_message(msg, msg["msg_type"], msg_id)
            if msg["parent_header"].get("msg_id") != msg_id or msg["msg_type"] == "execute_input":
                continue
            if msg["msg_type"] == "status":
                if msg["content"]["execution_state"] == "idle":
                    return reply, outputs
                continue
            outputs.append(msg)

    def test_type_error_is_an_error_message(self):
        reply, outputs = self.run_cell("const n: number = 'not a number';")
        self.assertEqual(reply["content"]["status"], "error")
        self.assertEqual([m["msg_type"] for m in outputs], ["error"])
        content = outputs[0]["content"]
        self.assertEqual(content["ename"], "TypeScriptError")
        self.assertIn("not assignable", content["evalue"])

    def test_kernel_usable_after_error(self):
        self.run_cell('throw new TypeError("first")')
        reply, outputs = self.run_cell("const after = 40 + 2;\nafter")
        self.assertEqual(reply["content"]["status"], "ok")
        results = [m for m in outputs if m["msg_type"] == "execute_result"]
        self.assertEqual(results[0]["content"]["data"]["text/plain"], "42")

    def test_error_fields(self):
        reply, outputs = self.run_cell('throw new RangeError("out of range")')
        self.assertEqual(reply["content"]["ename"], "RangeError")
        self.assertEqual(reply["content"]["evalue"], "out of range")
        self.assertTrue(reply["content"]["traceback"][0].startswith("RangeError: out of range"))

    def test_display_protocol_bundle(self):
        code = (
            "({ [Symbol.for('Jupyter.display')]() {"
            " return { 'text/html': '<i>hi</i>', 'text/markdown': '*hi*' }; } })"
        )
        reply, outputs = self.run_cell(code)
        data = [m for m in outputs if m["msg_type"] == "execute_result"][0]["content"]["data"]
        self.assertEqual(data["text/html"], "<i>hi</i>")
        self.assertEqual(data["text/markdown"], "*hi*")
        self.assertIn("text/plain", data)

    def test_shorthand_property_of_earlier_cell(self):
        # Plain tslab fails this with "ReferenceError: earlier is not defined".
        self.run_cell("const earlier = 5;")
        reply, outputs = self.run_cell("({ earlier })")
        self.assertEqual(reply["content"]["status"], "ok", reply["content"])
        results = [m for m in outputs if m["msg_type"] == "execute_result"]
        self.assertEqual(results[0]["content"]["data"]["text/plain"], "{ earlier: 5 }")

    def test_interrupt_stops_an_await(self):
        self.flush_channels()
        msg_id = self.kc.execute("console.log('started');\nawait new Promise(() => {});")
        while True:  # interrupt once the cell is certainly waiting
            msg = self.kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                break
        self.km.interrupt_kernel()
        reply = self.get_non_kernel_info_reply(timeout=60)
        self.assertEqual(reply["content"]["status"], "error")
        self.assertIn("Interrupted", reply["content"]["evalue"])
        reply, outputs = self.run_cell("'still alive'")
        self.assertEqual(reply["content"]["status"], "ok")

    def test_top_level_await(self):
        reply, outputs = self.run_cell("await new Promise((r) => setTimeout(() => r(7), 10))")
        self.assertEqual(reply["content"]["status"], "ok")
        results = [m for m in outputs if m["msg_type"] == "execute_result"]
        self.assertEqual(results[0]["content"]["data"]["text/plain"], "7")

    def test_display_handle_updates(self):
        code = (
            "import * as d from 'attnlab/display';\n"
            "const h = d.newDisplayHandle()!;\n"
            "h.update({ 'text/plain': 'step 1' });\n"
            "h.update({ 'text/plain': 'step 2' });\n"
            "d.clearOutput(true);"
        )
        reply, outputs = self.run_cell(code)
        self.assertEqual(reply["content"]["status"], "ok", reply["content"])
        kinds = [m["msg_type"] for m in outputs]
        self.assertEqual(kinds, ["display_data", "update_display_data", "clear_output"])
        self.assertEqual(outputs[0]["content"]["transient"]["display_id"], outputs[1]["content"]["transient"]["display_id"])

    def test_plotly_figure_result(self):
        reply, outputs = self.run_cell("({ data: [{ type: 'bar', x: ['a', 'b'], y: [1, 2] }], layout: { title: 'bars' } })")
        data = [m for m in outputs if m["msg_type"] == "execute_result"][0]["content"]["data"]
        self.assertIn("application/vnd.plotly.v1+json", data)
        self.assertIn("window.Plotly", data["text/html"])
        self.assertIn('Figure "bars"', data["text/plain"])

    def test_kernel_info_reports_typescript_version(self):
        self.flush_channels()
        self.kc.kernel_info()
        reply = self.kc.get_shell_msg(timeout=jkt.TIMEOUT)
        info = reply["content"]
        self.assertEqual(info["status"], "ok")
        self.assertRegex(info["language_info"]["version"], r"^\d+\.\d+\.\d+")

    def test_comm_info(self):
        self.flush_channels()
        self.kc.comm_info()
        reply = self.kc.get_shell_msg(timeout=jkt.TIMEOUT)
        self.assertEqual(reply["header"]["msg_type"], "comm_info_reply")
        jkt.validate_message(reply, "comm_info_reply")


# One kernel per run: the attnlab kernel gets the suite and the extras, any other kernel only the suite.
if KERNEL == "attnlab":
    del TypeScriptKernelTests
else:
    del AttnlabKernelTests

if __name__ == "__main__":
    unittest.main()
