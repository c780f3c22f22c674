// zod's English issue messages ("Invalid input: expected string, received number"), which the
// relay shows users (config.yaml errors, rejected envelopes, files it cannot read). Classic zod
// registered them on its first schema; zod/mini registers no locale, and without one every issue
// reads "Invalid input". Imported for its effect by the modules that turn issues into messages.
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";

z.config(en());
