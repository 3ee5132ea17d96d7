"""The attnlab kernel as users push it (issue 14): stray errors, a flood of output, tracebacks.

Each test class starts its own kernel, so a kernel killed by one test cannot fail the others. Runs with the suite:

    ATTNLAB_KERNEL=attnlab python3 -m unittest discover -s kernel/conformance -v
"""
import os
import queue
import time
import unittest

from jupyter_client.manager import start_new_kernel

KERNEL = os.environ.get("ATTNLAB_KERNEL", "attnlab")


@unittest.skipUnless(KERNEL == "attnlab", "checks of the attnlab kernel")
class KernelCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start_new_kernel(kernel_name=KERNEL, startup_timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.kc.stop_channels()
        cls.km.shutdown_kernel(now=True)

    def run_cell(self, code, timeout=120):
        """Execute `code`; return the reply and the IOPub messages it caused up to its idle status."""
        msg_id = self.kc.execute(code)
        outputs = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id or msg["msg_type"] == "execute_input":
                continue
            if msg["msg_type"] == "status":
                if msg["content"]["execution_state"] == "idle":
                    break
                continue
            outputs.append(msg)
        while True:  # skip replies to earlier requests (start_new_kernel's kernel_info)
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply, outputs

    def late_outputs(self, msg_id, seconds=1.0):
        """IOPub messages for `msg_id` that arrive after its idle status (output of callbacks that ran later)."""
        outputs, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") == msg_id:
                outputs.append(msg)
        return outputs

    def assertAlive(self):
        self.assertTrue(self.km.is_alive(), "the kernel process died")
        reply, outputs = self.run_cell("40 + 2", timeout=30)
        self.assertEqual(reply["content"]["status"], "ok", reply["content"])
        self.assertEqual(outputs[-1]["content"]["data"]["text/plain"], "42")


class StrayErrorTests(KernelCase):
    """tfjs-backend-wasm's emscripten module installs handlers that rethrow a stray rejection and kill the process."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kc.wait_for_ready(timeout=60)
        reply = cls.kc.execute_interactive("import * as al from 'attnlab';\nawait al.backend.ready();", timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]

    def stray_errors(self, outputs):
        return [m["content"] for m in outputs if m["msg_type"] == "error"]

    def test_unhandled_rejection_is_reported_and_kernel_lives(self):
        reply, outputs = self.run_cell("Promise.reject(new Error('stray rejection')); 1")
        errors = self.stray_errors(outputs + self.late_outputs(reply["parent_header"]["msg_id"]))
        self.assertEqual([e["evalue"] for e in errors], ["stray rejection"])
        self.assertIn("Unhandled promise rejection", errors[0]["traceback"][0])
        self.assertAlive()

    def test_throw_in_a_timer_is_reported_and_kernel_lives(self):
        reply, outputs = self.run_cell(
            "setTimeout(() => { throw new Error('stray throw') }, 100);\nawait new Promise((r) => setTimeout(r, 500));"
        )
        errors = self.stray_errors(outputs)
        self.assertEqual([e["evalue"] for e in errors], ["stray throw"])
        self.assertIn("Uncaught exception", errors[0]["traceback"][0])
        self.assertAlive()


class StreamTests(KernelCase):
    def test_a_million_lines_arrive_complete_and_in_order(self):
        n = 1_000_000
        start = time.monotonic()
        reply, outputs = self.run_cell(
            f"for (let i = 0; i < {n}; i++) console.log('line ' + i);\n"
            "console.error('err after');\nconsole.log('out after');",
            timeout=120,
        )
        elapsed = time.monotonic() - start
        self.assertEqual(reply["content"]["status"], "ok")
        streams = [m["content"] for m in outputs if m["msg_type"] == "stream"]
        stdout = "".join(s["text"] for s in streams if s["name"] == "stdout").splitlines()
        self.assertEqual(len(stdout), n + 1)
        self.assertEqual(stdout[:n], [f"line {i}" for i in range(n)])
        self.assertEqual(stdout[-1], "out after")
        # Interleaving of the two streams is kept: stderr's line comes between the loop's lines and the last one.
        names = [s["name"] for s in streams]
        self.assertEqual(names[names.index("stderr") :], ["stderr", "stdout"])
        self.assertLess(elapsed, 60)
        print(f"\n{n} lines in {len(streams)} stream messages, {elapsed:.1f} s")



class TracebackTests(KernelCase):
    def test_runtime_error_names_the_cell_and_line(self):
        code = (
            "interface Point {\n  x: number;\n}\n"
            "const s = `two\nlines`;\n"
            "let p: any = null; // nothing here\n"
            "const q = p.x.y;\n"
        )
        reply, outputs = self.run_cell(code)
        content = reply["content"]
        self.assertEqual(content["status"], "error")
        self.assertEqual(content["ename"], "TypeError")
        n = content["execution_count"]
        tb = content["traceback"]
        at = tb.index(f"Cell In[{n}], line 7")
        self.assertEqual(tb[at + 1].strip(), "const q = p.x.y;")
        self.assertNotIn("evalmachine", "\n".join(tb))

    def test_error_in_a_function_names_both_lines(self):
        code = "function f(o: any) {\n  return o.missing.x;\n}\nconst r = 1;\nf({});\n"
        reply, outputs = self.run_cell(code)
        n = reply["content"]["execution_count"]
        tb = reply["content"]["traceback"]
        self.assertEqual(
            [line for line in tb if line.startswith("Cell In")], [f"Cell In[{n}], line 2", f"Cell In[{n}], line 5"]
        )
        self.assertEqual(tb[tb.index(f"Cell In[{n}], line 2") + 1].strip(), "return o.missing.x;")

    def test_strings_and_values_are_unchanged(self):
        reply, outputs = self.run_cell("const t = `a\nb`; // c\nconst u = 'x';\n[t, u, t.length]")
        self.assertEqual(outputs[-1]["content"]["data"]["text/plain"], "[ 'a\\nb', 'x', 3 ]")


class AwaitInterruptTests(KernelCase):
    """Item 4: awaiting code that never lets the event loop run (a microtask loop) stops on interrupt."""

    def interrupt_running(self, code, timeout=15):
        msg_id = self.kc.execute(code)
        while True:  # interrupt once the cell is certainly running
            msg = self.kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                break
        time.sleep(0.3)
        self.km.interrupt_kernel()
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def value_of(self, expr):
        reply, outputs = self.run_cell(expr, timeout=30)
        self.assertEqual(reply["content"]["status"], "ok", reply["content"])
        return outputs[-1]["content"]["data"]["text/plain"]

    def test_a_microtask_loop_stops_and_stays_stopped(self):
        self.run_cell("let i = 0;")  # a cell that fails (or is interrupted) declares nothing in tslab
        reply = self.interrupt_running("console.log('go');\nwhile (true) { await null; i++; }")
        self.assertEqual(reply["content"]["status"], "error")
        self.assertIn("Interrupted", reply["content"]["evalue"])
        first = int(self.value_of("i"))
        self.assertGreater(first, 0)
        time.sleep(0.3)
        self.assertEqual(int(self.value_of("i")), first, "the loop kept running after the interrupt")
        self.assertAlive()

    def test_a_loop_in_a_function_of_an_earlier_cell_stops(self):
        self.run_cell("let n = 0;\nasync function spin() {\n  for (;;) { await Promise.resolve(n++); }\n}")
        reply = self.interrupt_running("console.log('go');\nawait spin();")
        self.assertEqual(reply["content"]["status"], "error")
        first = int(self.value_of("n"))
        time.sleep(0.3)
        self.assertEqual(int(self.value_of("n")), first)
        self.assertAlive()

    def test_awaits_keep_their_types_values_and_error_columns(self):
        self.assertEqual(self.value_of("const a: number = await Promise.resolve(3);\nconst b = await 4;\na + b"), "7")
        reply, _ = self.run_cell("const s: string = await Promise.resolve(3);")
        self.assertEqual(reply["content"]["status"], "error")
        self.assertTrue(reply["content"]["traceback"][0].startswith("1:7 - "), reply["content"]["traceback"])
        reply, _ = self.run_cell("const v = await Promise.resolve(1); const w: string = v;")
        self.assertTrue(reply["content"]["traceback"][0].startswith("1:43 - "), reply["content"]["traceback"])


if __name__ == "__main__":
    unittest.main()
